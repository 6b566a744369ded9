"""``embedstore.audit`` as a lazy public name (the function of ``embedstore.auditing``), and its checks before any embedding is read."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import embedstore
from embedstore.errors import DatasetNotFoundError, IncompleteArrayError, InvalidDataError
from tests.conftest import make_dataset


def test_audit_is_callable_whichever_is_imported_first():
    code = (
        "import embedstore.auditing.api, embedstore\n"
        "from embedstore import audit\n"
        "assert callable(embedstore.audit) and callable(audit)\n"
        "import sys; print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the audit package is light; its work imports torch
    light = subprocess.run(
        [sys.executable, "-c", "import embedstore, sys; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert light.stdout.strip() == "False"  # `import embedstore` stays light


def test_mistakes_are_refused_before_reading(tmp_path):
    store = embedstore.create_store(tmp_path / "s.zarr")
    make_dataset(store, "toy", n=20)
    with pytest.raises(DatasetNotFoundError, match="dataset 'tyo' is not in store"):
        embedstore.audit(store, "tyo")
    with pytest.raises(InvalidDataError, match="has no backbone arrays to audit"):
        embedstore.audit(store, "toy")
    w = store.writer("toy", "half", dim=4, dtype="float32", chunk_rows=8)
    w.write(np.ones((8, 4), np.float32))  # one chunk of three: not complete
    with pytest.raises(IncompleteArrayError, match="8 of 20 rows"):
        embedstore.audit(store, "toy")
    with pytest.raises(InvalidDataError, match="search method must be one of"):
        embedstore.audit(store, "toy", search="hnsw")


def test_multilabel_dataset_is_audited_without_the_label_error_section(tmp_path):
    from embedstore.store import write_meta
    from tests.conftest import write_embeddings

    rng = np.random.default_rng(0)
    n = 120
    Y = (rng.random((n, 3)) < 0.4).astype(np.uint8)
    X = (Y @ rng.normal(size=(3, 8)) + 0.3 * rng.normal(size=(n, 8))).astype(np.float32)
    X[100:104] = X[0:4]  # four test rows copy train rows
    split = np.array([0] * 80 + [1] * 20 + [2] * 20, dtype=np.uint8)
    store = embedstore.create_store(tmp_path / "ml.zarr")
    store.add_dataset("ml", ids=[f"r{i}" for i in range(n)], labels=Y, split=split,
                      task="multilabel", class_names=["a", "b", "c"])  # fmt: skip
    write_embeddings(store, "ml", "bb", X)
    write_meta(store, "ml", {"site": np.where(np.arange(n) % 2, "x", "y")})
    result = embedstore.audit(store, "ml", meta=["site"])
    assert {(p.id_a, p.id_b) for p in result.duplicates} >= {(f"r{100 + i}", f"r{i}")
                                                             for i in range(4)}  # fmt: skip
    leak = result.leak["bb"]
    assert leak["n_flagged"] >= 4 and "auc" in leak["logistic"]["without_flagged"]
    assert result.label_issues == {} and any("multilabel" in n for n in result.notes)
    (short,) = result.shortcuts
    assert not short.reads_attribute  # the site is the row parity: nothing in the features

"""``embedstore.audit`` as a lazy public name, and its checks before any embedding is read."""

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
        "import embedstore.audit.api, embedstore\n"
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

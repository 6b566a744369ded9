"""Per-sample attributes (``<dataset>/meta.<column>``) are data arrays of their dataset: never
listed as backbones, carried by an archive and an import, and passed by verify."""

from __future__ import annotations

import numpy as np

from embedstore import create_store, open_store
from embedstore.archive import export_archive, import_archive, verify
from embedstore.store import read_meta, write_meta
from tests.conftest import write_embeddings


def test_attributes_travel_in_archives_and_are_not_backbones(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    n = 20
    store.add_dataset(
        "d", ids=[f"s{i}" for i in range(n)], labels=np.arange(n) % 2,
        split=(np.arange(n) % 3).astype(np.uint8), task="binary", class_names=["a", "b"],
    )  # fmt: skip
    sites = [f"h{i % 3}" for i in range(n)]
    write_meta(store, "d", {"site": sites})
    write_embeddings(store, "d", "bb", np.ones((n, 4), np.float32))
    assert open_store(tmp_path / "s.zarr").backbones("d") == ["bb"]
    export_archive(tmp_path / "s.zarr", tmp_path / "a.zip")
    assert verify(tmp_path / "a.zip").ok
    import_archive(tmp_path / "a.zip", tmp_path / "t.zarr")
    assert verify(tmp_path / "t.zarr").ok
    assert list(read_meta(open_store(tmp_path / "t.zarr"), "d", "site")) == sites

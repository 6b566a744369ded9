"""Small stores for the engine and study tests: several datasets, two backbones each."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from embedstore import create_store
from tests.conftest import write_embeddings


def make_study_store(path, dataset: str, *, n=120, dim=5, seed=0, missing_b=False, group=False):
    """A 3-class dataset with backbones 'a' and 'b' (only 'a' with ``missing_b``)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    split = np.repeat([0, 1, 2], [n * 6 // 10, n * 2 // 10, n - n * 8 // 10]).astype(np.uint8)
    means = rng.normal(size=(2, 3, dim))
    store = create_store(path)
    store.add_dataset(
        dataset,
        ids=[f"{dataset}{i:04d}" for i in range(n)],
        labels=y,
        split=split,
        task="multiclass",
        class_names=["x", "y", "z"],
        group=[f"p{i // 2}" for i in range(n)] if group else None,
    )
    for i, name in enumerate("ab"):
        if name == "b" and missing_b:
            continue
        X = (means[i][y] + 1.6 * rng.normal(size=(n, dim))).astype(np.float32)
        write_embeddings(store, dataset, name, X)
    return store


STUDY = """
[study]
name = "toy"
seeds = 2
out = "results.jsonl"
[options]
n_bootstrap = 0
[[datasets]]
store = "one.zarr"
dataset = "one"
[[datasets]]
store = "two.zarr"
dataset = "two"
[[datasets]]
store = "three.zarr"
dataset = "three"
[features]
backbones = ["a", "b"]
fusions = [["a", "b"]]
[[protocols]]
methods = ["knn", "proto"]  # cheap methods: the engine is under test (golden covers logreg)
fractions = [0.2, 1.0]
"""


@pytest.fixture
def study_dir(tmp_path):
    """Three stores and a study file over them (``study.toml``)."""
    for k, name in enumerate(("one", "two", "three")):
        make_study_store(tmp_path / f"{name}.zarr", name, seed=k)
    (tmp_path / "study.toml").write_text(textwrap.dedent(STUDY))
    return tmp_path


def same_records(a, b) -> bool:
    """Records equal but for the wall time of their cells and the store's spelling."""

    def key(r):
        d = r.to_dict()
        d.pop("seconds")
        d.pop("store")
        return d

    return sorted(map(str, map(key, a))) == sorted(map(str, map(key, b)))

"""Shared fixtures: small seeded stores written through the real store API."""

from __future__ import annotations

import os

# The CLI's consoles read the terminal width once, when embedstore.cli._common is first imported;
# one fixed width for the whole session keeps every table test independent of which test (or
# which xdist worker) imported the CLI first.
os.environ["COLUMNS"] = "400"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from embedstore import create_store  # noqa: E402


def make_dataset(store, name="toy", n=40, classes=("a", "b"), seed=0, task=None):
    """Add a single-label dataset with a 60/20/20 split and return (ids, labels, split)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"img_{i:04d}.png" for i in range(n)])
    labels = np.arange(n) % len(classes)
    rng.shuffle(labels)
    split = np.array(
        [0] * (n * 6 // 10) + [1] * (n * 2 // 10) + [2] * (n - n * 8 // 10), dtype=np.uint8
    )
    task = task or ("binary" if len(classes) == 2 else "multiclass")
    store.add_dataset(
        name, ids=ids, labels=labels, split=split, task=task, class_names=list(classes)
    )
    return ids, labels, split


def write_embeddings(
    store, dataset, backbone, X, dtype="float32", chunk_rows=None, provenance=None
):
    """Write a whole array through the chunked writer and mark it complete."""
    w = store.writer(dataset, backbone, dim=X.shape[1], dtype=dtype, chunk_rows=chunk_rows)
    for start in range(0, len(X), 7):
        w.write(X[start : start + 7])
    w.finish(provenance or {"name": backbone})
    return w


@pytest.fixture
def toy_store(tmp_path):
    """A store with one binary dataset of 40 rows and one complete 8-d float32 backbone."""
    store = create_store(tmp_path / "toy.zarr")
    make_dataset(store)
    X = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    write_embeddings(store, "toy", "bb", X, chunk_rows=16)
    return store, X


def pytest_configure(config):
    """The `slow` marker: `make test-fast` (-m "not slow") leaves these out."""
    config.addinivalue_line(
        "markers",
        "slow: starts real processes (CLI subprocesses, torchrun, kills), S3 servers or browsers; "
        "left out by `make test-fast`",
    )

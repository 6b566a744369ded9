"""Tiny seeded datasets and arrays written through the real store API: the test suite's
``tests/conftest.py`` fixtures and ``benchmarks/bench_faults.py`` build their stores with these."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedstore.store import EmbeddingWriter, Store


def make_dataset(
    store: Store,
    name: str = "toy",
    n: int = 40,
    classes: Sequence[str] = ("a", "b"),
    seed: int = 0,
    task: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    store: Store,
    dataset: str,
    backbone: str,
    X: np.ndarray,
    dtype: str = "float32",
    chunk_rows: int | None = None,
    provenance: dict | None = None,
) -> EmbeddingWriter:
    """Write a whole array through the chunked writer and mark it complete; return the writer."""
    w = store.writer(dataset, backbone, dim=X.shape[1], dtype=dtype, chunk_rows=chunk_rows)
    for start in range(0, len(X), 7):
        w.write(X[start : start + 7])
    w.finish(provenance or {"name": backbone})
    return w

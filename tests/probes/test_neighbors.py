"""Blocked top-k, the sweep's similarity cache and blocked feature loading, against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import create_store
from embedstore.probes import features, neighbors
from embedstore.probes.features import load_feature_sets
from embedstore.probes.neighbors import SimilarityCache, block_topk
from tests.conftest import write_embeddings


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _brute(Q, B, k, metric="cosine"):
    if metric == "cosine":
        sim = _unit(Q) @ _unit(B).T
    else:
        sim = -0.5 * ((Q[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sim, idx, axis=1), idx


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_block_topk_merges_blocks_exactly(monkeypatch, metric):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    q_rows, b_rows = np.arange(0, 300, 3), np.setdiff1d(np.arange(300), np.arange(0, 300, 3))
    monkeypatch.setattr(neighbors, "BLOCK_BYTES", 4 * 6 * 16)  # 16-row blocks: many merges
    sims, idx = block_topk(X, X, 7, q_rows=q_rows, b_rows=b_rows, metric=metric)
    ref_s, ref_i = _brute(X[q_rows], X[b_rows], 7, metric)
    np.testing.assert_allclose(sims.numpy(), ref_s, atol=1e-5)
    np.testing.assert_array_equal(idx.numpy(), ref_i)


@pytest.mark.parametrize("budget", [0, 1 << 30])  # recomputed per call / one cached matrix
def test_similarity_cache_gives_the_same_neighbours_either_way(budget):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    pool, test = np.arange(120), np.arange(150, 200)
    cache = SimilarityCache(X, pool, {"test": test, "val": np.arange(120, 150)}, "cpu")
    cache.budget = budget
    for cols in (pool[::2], pool[1::3]):  # the first use computes blocks, later ones may cache
        sims, idx = cache.topk("test", cols, 5)
        ref_s, ref_i = _brute(X[test], X[cols], 5)
        np.testing.assert_allclose(sims.numpy(), ref_s, atol=1e-5)
        np.testing.assert_array_equal(idx.numpy(), ref_i)
        rows = pool[1::4]  # cross-validation inside the pool
        sims, idx = cache.topk("pool", cols, 3, rows=rows)
        ref_s, ref_i = _brute(X[rows], X[cols], 3)
        np.testing.assert_allclose(sims.numpy(), ref_s, atol=1e-5)
        np.testing.assert_array_equal(idx.numpy(), ref_i)
    assert bool(cache._mats) == (budget > 0)


@pytest.mark.parametrize("normalize", ["l2", "standard", "none"])
def test_features_load_block_by_block_like_whole_arrays(tmp_path, monkeypatch, normalize):
    rng = np.random.default_rng(2)
    n = 103
    store = create_store(tmp_path / "s.zarr")
    split = rng.choice([0, 0, 1, 2], n).astype(np.uint8)
    store.add_dataset(
        "d",
        ids=[str(i) for i in range(n)],
        labels=rng.integers(0, 2, n),
        split=split,
        task="binary",
        class_names=["a", "b"],
    )
    A = (3 + 2 * rng.normal(size=(n, 4))).astype(np.float32)
    B = rng.normal(size=(n, 3)).astype(np.float32)
    write_embeddings(store, "d", "a", A)
    w = store.writer("d", "b", dim=3, dtype="float32")
    w.mark_missing(10, "10", "unreadable")
    w.write(B)
    w.finish({})
    monkeypatch.setattr(features, "_BLOCK_ROWS", 8)
    data, (fa, fab) = load_feature_sets(store, "d", [["a"], ["a", "b"]], normalize=normalize)
    keep = np.arange(n) != 10
    train = split[keep] == 0

    def norm(X):
        if normalize == "l2":
            return X / np.linalg.norm(X, axis=1, keepdims=True)
        if normalize == "standard":
            return (X - X[train].mean(0)) / X[train].std(0)
        return X

    np.testing.assert_allclose(fa.X, norm(A[keep]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        fab.X, np.concatenate([norm(A[keep]), norm(B[keep])], axis=1), rtol=1e-5, atol=1e-5
    )
    assert fab.widths == (4, 3) and fa.X.dtype == np.float32 and len(data.ids) == n - 1

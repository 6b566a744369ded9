"""Planted duplicates among real MRI images, found from the stored embeddings of a real backbone.

Figures seen when this test was written (MobileNetV2, 64 px images at 128 px, k = 4):
recall 10/12 of the planted copies (all exact and brightness-shifted ones; 2 of 3 JPEG re-saves
and 2 of 3 copies resized by 4 px), precision 10/11 among flagged test-train/val pairs; besides,
two train-train and test-test pairs of Br35H itself with a pixel correlation of 0.97-0.999.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import embedstore
from embedstore.auditing.duplicates import calibrate
from embedstore.auditing.search import nearest
from embedstore.store import open_store

from .conftest import SIZE


def _pixels(root, image_id: str) -> np.ndarray:
    im = Image.open(root / image_id).convert("L").resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(im, dtype=np.float64).ravel()


def _pixel_corr(root, a: str, b: str) -> float:
    return float(np.corrcoef(_pixels(root, a), _pixels(root, b))[0, 1])


@pytest.fixture(scope="module")
def audited(planted):
    store, truth = planted
    return embedstore.audit(store, "mri"), store, truth


def test_planted_duplicates_are_found_with_recall_and_precision(audited):
    result, store, truth = audited
    root = store.parent / "images"
    across = [p for p in result.duplicates if p.split_a == "test" and p.split_b != "test"]
    found = {(p.id_a, p.id_b) for p in across}
    hits = [a for a, b in truth.items() if (a, b) in found]
    recall = len(hits) / len(truth)
    correct = [p for p in across if truth.get(p.id_a) == p.id_b]
    precision = len(correct) / max(len(across), 1)
    assert recall >= 0.75, (recall, sorted(set(truth) - set(hits)))
    assert precision >= 0.85, (precision, [p.record() for p in across if p not in correct])
    kinds_found = {a.split("dup_")[1].split("_")[0] for a in hits}
    assert {"exact", "brighter"} <= kinds_found
    for a in (a for a in truth if "exact" in a):
        assert a in hits  # an exact copy is never missed
    # every flagged pair, planted or not, looks alike in pixel space (an independent check)
    for p in result.duplicates:
        if p.id_a not in truth:
            assert _pixel_corr(root, p.id_a, p.id_b) > 0.85, p.record()
    assert result.duplicate_counts.get("test-train", 0) == len(across)


def test_random_pairs_are_below_the_threshold(audited):
    result, store, truth = audited
    s = open_store(store)
    name = result.backbones[0]
    X = s.embeddings("mri", name)
    ids = s.ids("mri")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(X), 200), rng.integers(0, len(X), 200)
    root = store.parent / "images"
    keep = (a != b) & ~np.isin(ids[a], list(truth)) & ~np.isin(ids[b], list(truth))
    # Br35H holds a few near-identical slices itself: random pairs exclude those that look alike
    keep &= np.array([_pixel_corr(root, ids[i], ids[j]) < 0.9 for i, j in zip(a, b, strict=True)])
    u = X[a[keep]] / np.linalg.norm(X[a[keep]], axis=1, keepdims=True)
    v = X[b[keep]] / np.linalg.norm(X[b[keep]], axis=1, keepdims=True)
    assert ((u * v).sum(axis=1) < result.thresholds[name]["threshold"]).all()


def test_leak_effect_scores_test_with_and_without_flagged_rows(audited):
    result, _, _ = audited
    (effect,) = result.leak.values()
    flagged = {p.id_a for p in result.duplicates if p.split_a == "test" and p.split_b != "test"}
    assert effect["n_flagged"] == len(flagged) and effect["n_test"] == 32
    for probe in ("logistic", "knn"):
        for part in ("all", "without_flagged"):
            m = effect[probe][part]["accuracy"]
            assert 0.0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1.0


def test_nearest_matches_brute_force_and_faiss():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 24)).astype(np.float32)
    q, b = np.arange(0, 100), np.arange(100, 300)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    ref = Xn[q] @ Xn[b].T
    for method in ("exact", "flat"):
        sims, rows = nearest(X, q, b, method=method)
        np.testing.assert_array_equal(rows, b[ref.argmax(axis=1)])
        np.testing.assert_allclose(sims, ref.max(axis=1), atol=1e-5)
    within = np.arange(300)
    sims, rows = nearest(X, within, within, exclude_self=True, method="exact")
    full = Xn @ Xn.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(rows, full.argmax(axis=1))


def test_calibrate_flags_only_the_outliers():
    rng = np.random.default_rng(2)
    ordinary = 1 - np.exp(rng.normal(np.log(0.15), 0.3, size=500))  # cos ~ 0.85
    t = calibrate(np.concatenate([ordinary, [0.999, 0.9995, 1.0]]))
    assert (ordinary < t).mean() > 0.99 and 0.9 < t < 0.999


def test_ivf_finds_planted_copies_and_most_true_neighbours():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(20, 32))
    X = (centres[rng.integers(0, 20, 4000)] + 0.5 * rng.normal(size=(4000, 32))).astype(np.float32)
    q, b = np.arange(0, 500), np.arange(500, 4000)
    X[q[:50]] = X[b[:50]] + 0.01 * rng.normal(size=(50, 32)).astype(np.float32)
    _, exact = nearest(X, q, b, method="exact")
    sims, approx = nearest(X, q, b, method="ivf")
    assert (approx[:50] == b[:50]).all() and (sims[:50] > 0.99).all()  # every copy found
    assert (approx == exact).mean() >= 0.9

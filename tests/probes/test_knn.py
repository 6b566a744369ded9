"""Weighted kNN against a brute-force numpy loop over queries; torch and FAISS backends agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedstore.errors import InvalidDataError
from embedstore.probes.knn import KNNClassifier, knn_vote


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    C, D = 4, 24
    centers = rng.normal(size=(C, D))
    y = rng.integers(0, C, 260)
    X = 0.25 * (centers[y] + 1.5 * rng.normal(size=(260, D)))
    X, y = X.astype(np.float32), y * 10 + 3  # labels 3, 13, 23, 33: not 0..C-1
    return X[:200], y[:200], X[200:], y[200:]


def _brute(Xtr, ytr, Xte, *, k, T, metric, classes):
    """One query at a time in float64: sims, top-k, exp(sim / T) votes, normalised."""
    Xtr, Xte = Xtr.astype(np.float64), Xte.astype(np.float64)
    if metric == "cosine":
        Xtr = Xtr / np.linalg.norm(Xtr, axis=1, keepdims=True)
        Xte = Xte / np.linalg.norm(Xte, axis=1, keepdims=True)
    probas, neighbours = [], []
    for q in Xte:
        if metric == "cosine":
            sims = Xtr @ q
        else:
            sims = -0.5 * ((Xtr - q) ** 2).sum(1)
        top = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(len(classes)) if ytr.ndim == 1 else np.zeros(ytr.shape[1])
        for j in top:
            w = np.exp(sims[j] / T)
            if ytr.ndim == 1:
                votes[np.searchsorted(classes, ytr[j])] += w
            else:
                votes += w * ytr[j]
        total = sum(np.exp(sims[j] / T) for j in top)
        probas.append(votes / total)
        neighbours.append(top)
    return np.array(probas), np.array(neighbours)


@pytest.mark.parametrize("metric,T", [("cosine", 0.07), ("euclidean", 0.5)])
@pytest.mark.parametrize("backend", ["torch", "faiss", "auto"])
def test_matches_brute_force(data, metric, T, backend):
    Xtr, ytr, Xte, _ = data
    model = KNNClassifier(k=7, temperature=T, metric=metric, backend=backend).fit(Xtr, ytr)
    ref_p, ref_nb = _brute(Xtr, ytr, Xte, k=7, T=T, metric=metric, classes=model.classes_)
    np.testing.assert_allclose(model.predict_proba(Xte), ref_p, rtol=1e-4, atol=1e-6)
    assert np.array_equal(model.predict(Xte), model.classes_[ref_p.argmax(1)])
    _, idx = model.neighbors(Xte)
    assert np.array_equal(idx, ref_nb)


def test_backends_agree_and_sims_are_sorted(data):
    Xtr, ytr, Xte, _ = data
    for metric in ("cosine", "euclidean"):
        s_t, i_t = KNNClassifier(k=10, metric=metric, backend="torch").fit(Xtr, ytr).neighbors(Xte)
        s_f, i_f = KNNClassifier(k=10, metric=metric, backend="faiss").fit(Xtr, ytr).neighbors(Xte)
        assert np.array_equal(i_t, i_f)
        np.testing.assert_allclose(s_t, s_f, rtol=1e-4, atol=1e-5)
        assert (np.diff(s_t, axis=1) <= 0).all()
        a, b = Xte.astype(np.float64), Xtr.astype(np.float64)  # every similarity, by numpy
        if metric == "cosine":
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
            b = b / np.linalg.norm(b, axis=1, keepdims=True)
            full = a @ b.T
        else:
            full = -0.5 * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        np.testing.assert_allclose(np.take_along_axis(full, i_t, 1), s_t, rtol=1e-4, atol=1e-5)


def test_euclidean_on_unit_vectors_equals_cosine(data):
    Xtr, ytr, Xte, _ = data
    unit_tr = Xtr / np.linalg.norm(Xtr, axis=1, keepdims=True)
    unit_te = Xte / np.linalg.norm(Xte, axis=1, keepdims=True)
    cos = KNNClassifier(metric="cosine").fit(Xtr, ytr).predict_proba(Xte)
    euc = KNNClassifier(metric="euclidean").fit(unit_tr, ytr).predict_proba(unit_te)
    np.testing.assert_allclose(euc, cos, rtol=1e-3, atol=1e-5)


def test_multilabel_vote_matches_brute_force(data):
    Xtr, _, Xte, _ = data
    rng = np.random.default_rng(1)
    Ytr = (rng.random((200, 3)) < 0.4).astype(np.int64)
    model = KNNClassifier(k=5).fit(Xtr, Ytr)
    ref, _ = _brute(Xtr, Ytr, Xte, k=5, T=0.07, metric="cosine", classes=None)
    proba = model.predict_proba(Xte)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba, ref, rtol=1e-4, atol=1e-6)
    assert np.array_equal(model.predict(Xte), (ref >= 0.5).astype(int))
    assert model.score(Xte, model.predict(Xte)) == 1.0


def test_one_sorted_top_k_gives_every_k_of_a_grid(data):
    """The engine's kNN cells vote every k of the grid from one sorted top-k (``knn_vote`` with
    several k); each equals a classifier fitted with that k."""
    Xtr, ytr, Xte, _ = data
    cols = np.random.default_rng(2).choice(200, 40, replace=False)
    model = KNNClassifier(k=30).fit(Xtr[cols], ytr[cols])
    sims, idx = model.neighbors(Xte)
    codes = np.searchsorted(model.classes_, ytr[cols])[idx]
    grid = [1, 3, 10, 30]
    votes = knn_vote(sims, codes, grid, n_classes=model.classes_.size)
    for k, proba in zip(grid, votes, strict=True):
        direct = KNNClassifier(k=k).fit(Xtr[cols], ytr[cols]).predict_proba(Xte)
        np.testing.assert_allclose(proba, direct, rtol=1e-4, atol=1e-6)


def test_proba_from_neighbors_hand_case():
    sims = np.array([[0.0, np.log(3.0) * 0.5]])  # weights exp(sim / 0.5): 1 and 3
    (p,) = knn_vote(sims, np.array([[1, 0]]), [2], temperature=0.5, n_classes=3)
    np.testing.assert_allclose(p, [[0.75, 0.25, 0.0]])
    (p,) = knn_vote(sims, np.array([[[1, 1], [0, 1]]]), [2], temperature=0.5)
    np.testing.assert_allclose(p, [[0.25, 1.0]])


def test_k_larger_than_training_set_is_clipped(data):
    Xtr, ytr, Xte, _ = data
    model = KNNClassifier(k=50).fit(Xtr[:12], ytr[:12])
    assert model.k_ == 12
    ref, _ = _brute(Xtr[:12], ytr[:12], Xte, k=12, T=0.07, metric="cosine", classes=model.classes_)
    np.testing.assert_allclose(model.predict_proba(Xte), ref, rtol=1e-4, atol=1e-6)


def test_torch_input(data):
    Xtr, ytr, Xte, yte = data
    a = KNNClassifier().fit(torch.from_numpy(Xtr), torch.from_numpy(ytr))
    b = KNNClassifier().fit(Xtr, ytr)
    np.testing.assert_allclose(a.predict_proba(torch.from_numpy(Xte)), b.predict_proba(Xte))
    assert a.score(Xte, yte) > 0.5  # four separable-ish classes: well above chance


def test_validation_errors(data):
    Xtr, ytr, Xte, _ = data
    with pytest.raises(InvalidDataError, match="not fitted"):
        KNNClassifier().predict(Xte)
    model = KNNClassifier().fit(Xtr, ytr)
    with pytest.raises(InvalidDataError, match="fitted with 24"):
        model.predict(Xte[:, :5])
    with pytest.raises(InvalidDataError, match="fitted with 24"):
        model.predict(torch.from_numpy(Xte[:, :5]))
    with pytest.raises(InvalidDataError, match="2-D"):
        model.predict(Xte[0])
    bad = Xte.copy()
    bad[0, 0] = np.inf
    with pytest.raises(InvalidDataError, match="finite"):
        model.predict(bad)
    with pytest.raises(InvalidDataError, match="finite"):
        model.predict(torch.from_numpy(bad))
    with pytest.raises(InvalidDataError, match="199 rows but X has 200"):
        KNNClassifier().fit(Xtr, ytr[:-1])
    with pytest.raises(InvalidDataError, match="metric must be one of"):
        KNNClassifier(metric="manhattan").fit(Xtr, ytr)
    with pytest.raises(InvalidDataError, match="backend must be one of"):
        KNNClassifier(backend="annoy").fit(Xtr, ytr)
    with pytest.raises(InvalidDataError, match="k must be an integer"):
        KNNClassifier(k=0).fit(Xtr, ytr)
    with pytest.raises(InvalidDataError, match=r"sims must be \(nq, k\)"):
        knn_vote(np.zeros((3, 5)), np.zeros((3, 4), dtype=int), [1], n_classes=2)

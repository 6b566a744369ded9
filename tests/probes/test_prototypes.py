"""Nearest prototype against sklearn NearestCentroid; episodes against a plain per-episode loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestCentroid

from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.prototypes import (
    Episodes,
    NearestPrototype,
    default_n_way,
    evaluate_episodes,
    sample_episodes,
)


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    n_classes, D = 6, 16
    centers = rng.normal(size=(n_classes, D))
    y = rng.integers(0, n_classes, 600) * 3 + 1  # labels 1, 4, 7, ...: not 0..C-1
    X = centers[(y - 1) // 3] + 1.2 * rng.normal(size=(600, D))
    return X.astype(np.float32), y


def test_nearest_prototype_matches_nearest_centroid(blobs):
    X, y = blobs
    model = NearestPrototype().fit(X[:400], y[:400])
    ref = NearestCentroid().fit(X[:400], y[:400])
    assert np.array_equal(model.predict(X[400:]), ref.predict(X[400:]))
    np.testing.assert_allclose(model.prototypes_, ref.centroids_, rtol=1e-5, atol=1e-6)
    proba = model.predict_proba(X[400:])
    assert proba.shape == (200, 6)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert np.array_equal(model.classes_[proba.argmax(1)], model.predict(X[400:]))
    assert model.score(X[400:], y[400:]) == pytest.approx(ref.score(X[400:], y[400:]))


def test_nearest_prototype_proba_is_softmax_of_negative_squared_distance():
    X = np.array([[0.0, 0.0], [0.0, 2.0]])
    model = NearestPrototype().fit(X, [0, 1])
    p = model.predict_proba([[0.0, 0.5]])  # squared distances 0.25 and 2.25
    expected = np.exp([-0.25, -2.25]) / np.exp([-0.25, -2.25]).sum()
    np.testing.assert_allclose(p[0], expected)


def test_nearest_prototype_validation(blobs):
    X, y = blobs
    with pytest.raises(InvalidDataError, match="not fitted"):
        NearestPrototype().predict(X)
    model = NearestPrototype().fit(X, y)
    with pytest.raises(InvalidDataError, match="fitted with 16"):
        model.predict(X[:, :8])
    with pytest.raises(InvalidDataError, match="2-D"):
        NearestPrototype().fit(X[0], y[:1])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InvalidDataError, match="1 of 600 rows"):
        NearestPrototype().fit(bad, y)
    with pytest.raises(InvalidDataError, match="599 rows but X has 600"):
        NearestPrototype().fit(X, y[:-1])


def test_episodes_are_valid_disjoint_and_seeded(blobs):
    _, y = blobs
    ep = sample_episodes(y, n_way=5, k_shot=7, n_query=4, n_episodes=50, seed=3)
    assert ep.classes.shape == (50, 5)
    assert ep.support.shape == (50, 5, 7) and ep.query.shape == (50, 5, 4)
    assert ep.n_episodes == 50 and (ep.n_way, ep.k_shot, ep.n_query, ep.seed) == (5, 7, 4, 3)
    for e in range(50):
        assert len(set(ep.classes[e])) == 5  # distinct ways
        rows = np.concatenate([ep.support[e].ravel(), ep.query[e].ravel()])
        assert len(set(rows)) == rows.size  # no row twice: support and query disjoint
        for w in range(5):
            assert (y[ep.support[e, w]] == ep.classes[e, w]).all()
            assert (y[ep.query[e, w]] == ep.classes[e, w]).all()
    same = sample_episodes(y, n_way=5, k_shot=7, n_query=4, n_episodes=50, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(ep), _arrays(same), strict=True))
    other = sample_episodes(y, n_way=5, k_shot=7, n_query=4, n_episodes=50, seed=4)
    assert not np.array_equal(ep.support, other.support)


def _arrays(ep: Episodes):
    return ep.classes, ep.support, ep.query


def test_episode_classes_are_drawn_uniformly_among_eligible():
    y = np.repeat(np.arange(4), [30, 30, 30, 5])  # class 3 too small for 10 + 5
    ep = sample_episodes(y, n_way=2, k_shot=10, n_query=5, n_episodes=600, seed=0)
    counts = np.bincount(ep.classes.ravel(), minlength=4)
    assert counts[3] == 0
    assert np.all(np.abs(counts[:3] - 400) < 60)  # 1200 picks over 3 classes


def _loop_reference(X, ep):
    """One episode at a time, float64 numpy: the plain implementation."""
    out = []
    for e in range(ep.n_episodes):
        protos = np.stack([X[ep.support[e, w]].mean(0) for w in range(ep.n_way)])
        correct = 0
        for w in range(ep.n_way):
            for q in ep.query[e, w]:
                d = ((X[q] - protos) ** 2).sum(1)
                correct += int(np.argmin(d) == w)
        out.append(correct / (ep.n_way * ep.n_query))
    return np.array(out)


def test_evaluate_episodes_equals_plain_loop(blobs):
    X, y = blobs
    ep = sample_episodes(y, n_way=5, k_shot=5, n_query=6, n_episodes=40, seed=1)
    result = evaluate_episodes(X, ep)
    ref = _loop_reference(X.astype(np.float64), ep)
    np.testing.assert_array_equal(result.accuracies, ref)
    assert result.mean == pytest.approx(ref.mean())
    assert result.ci95 == pytest.approx(1.96 * ref.std() / np.sqrt(40))
    assert (result.n_way, result.k_shot, result.n_query, result.n_episodes) == (5, 5, 6, 40)
    assert 0.3 < result.mean < 1.0  # separable blobs: well above chance (0.2)
    # a torch tensor, tiny blocks (one episode per step) and the torch (GPU) kernel run on the CPU
    # all give the same answer
    from embedstore.probes import prototypes

    old = prototypes._CHUNK_BYTES
    prototypes._CHUNK_BYTES = 1
    try:
        again = evaluate_episodes(torch.from_numpy(X), ep)
    finally:
        prototypes._CHUNK_BYTES = old
    np.testing.assert_array_equal(again.accuracies, result.accuracies)
    correct = prototypes._correct_torch(torch.from_numpy(X), ep)
    np.testing.assert_array_equal(correct / 30.0, ref)


def test_infeasible_shot_says_counts_and_largest_shot():
    y = np.repeat(np.arange(3), [50, 30, 12])
    with pytest.raises(ProtocolError) as err:
        sample_episodes(y, n_way=3, k_shot=20, n_query=15)
    msg = str(err.value)
    assert "0: 50, 1: 30, 2: 12" in msg
    assert "only 1 classes" in msg
    # the 3rd largest class has 12 samples; 15 queries leave nothing: shots + queries <= 12,
    # and the suggested pair must itself be feasible
    assert "must be at most 12: e.g. --shots 6 --n-query 6" in msg
    assert sample_episodes(y, n_way=3, k_shot=6, n_query=6, n_episodes=2).n_way == 3
    with pytest.raises(ProtocolError, match=r"largest feasible --shots \(k_shot\) is 15"):
        sample_episodes(y, n_way=2, k_shot=20, n_query=15)
    assert sample_episodes(y, n_way=2, k_shot=15, n_query=15, n_episodes=2).k_shot == 15
    with pytest.raises(ProtocolError, match=r"only 3 classes; use --ways \(n_way\) 3 or fewer"):
        sample_episodes(y, n_way=5, k_shot=1, n_query=1)
    one = np.repeat(np.arange(3), [9, 9, 1])  # a class of one sample: only fewer ways help
    with pytest.raises(ProtocolError, match=r"use --ways \(n_way\) 2 or fewer"):
        sample_episodes(one, n_way=3, k_shot=1, n_query=1)


def test_evaluate_episodes_rejects_rows_outside_X(blobs):
    X, y = blobs
    ep = sample_episodes(y, n_way=2, k_shot=2, n_query=2, n_episodes=5)
    with pytest.raises(InvalidDataError, match="only 100 rows"):
        evaluate_episodes(X[:100], ep)


def test_default_n_way():
    """WAYS_RULE, as `embedstore protocols` and the docs state it."""
    assert default_n_way(2) == 2
    assert default_n_way(3) == 3
    assert default_n_way(4) == 4
    assert default_n_way(5) == 5
    assert default_n_way(10) == 5
    with pytest.raises(ProtocolError):
        default_n_way(1)

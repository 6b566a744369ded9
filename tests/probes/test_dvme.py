"""DVME fusion head on synthetic embeddings: attention finds the informative backbone, accuracy
matches the best single-backbone logistic probe, training is bit-reproducible on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.dvme import DVMEClassifier
from embedstore.probes.selection import holdout_rows

# Small token width keeps each fit to about a second; one head of 64 dims lets attention move
# as far as the default 512/8 configuration does (the default's heads are 64-d too).
SMALL = dict(proj_dim=64, n_heads=2)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny matrices on a shared 2-core machine: extra threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def signal_and_noise(seed: int, n: int, k: int = 4, da: int = 64, db: int = 96):
    """Backbone A (da-d): class means on the unit sphere plus small isotropic noise, so the
    classes are separable with a wide margin and a linear probe on A is (near) perfect.
    Backbone B (db-d): standard normal noise, independent of the label."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, da))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = np.arange(n) % k
    rng.shuffle(y)
    a = means[y] + 0.08 * rng.standard_normal((n, da))
    b = rng.standard_normal((n, db))
    return np.hstack([a, b]).astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    """One model shared by the tests below (module fixtures run before the autouse one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    X, y = signal_and_noise(seed=0, n=1500)
    Xtr, ytr, Xte, yte = X[:1000], y[:1000], X[1000:], y[1000:]
    model = DVMEClassifier(widths=[64, 96], seed=0, **SMALL).fit(Xtr, ytr)
    torch.set_num_threads(before)
    return model, Xtr, ytr, Xte, yte


def best_single_backbone_logistic(Xtr, ytr, Xte, yte, widths, seed=0):
    """Test accuracy of the better backbone's logistic probe, C chosen on a 20% validation split."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(Xtr))
    va, tr = perm[: len(perm) // 5], perm[len(perm) // 5 :]
    scores, start = [], 0
    for w in widths:
        cols = slice(start, start + w)
        start += w
        fits = [
            LogisticRegression(C=C, max_iter=2000).fit(Xtr[tr, cols], ytr[tr])
            for C in (0.01, 0.1, 1.0, 10.0)
        ]
        C = [0.01, 0.1, 1.0, 10.0][int(np.argmax([f.score(Xtr[va, cols], ytr[va]) for f in fits]))]
        ref = LogisticRegression(C=C, max_iter=2000).fit(Xtr[:, cols], ytr)
        scores.append(ref.score(Xte[:, cols], yte))
    return max(scores)


def test_informative_backbone_receives_clearly_more_attention(fitted):
    model, _, _, Xte, yte = fitted
    att = model.attention(Xte)  # (n, 2)
    assert att.shape == (len(Xte), 2)
    summary = model.attention_summary(Xte, yte)
    mean_a, mean_b = summary["mean"]
    assert mean_a > mean_b + 0.2, summary["mean"]
    assert np.mean(att[:, 0] > att[:, 1]) > 0.9
    assert sorted(summary["per_class"]) == [0, 1, 2, 3]
    for c, (a, b) in summary["per_class"].items():
        assert a > b + 0.1, (c, a, b)


def test_accuracy_at_least_best_single_backbone_logistic(fitted):
    model, Xtr, ytr, Xte, yte = fitted
    reference = best_single_backbone_logistic(Xtr, ytr, Xte, yte, [64, 96])
    assert reference > 0.95  # the reference really is the informative backbone
    assert model.score(Xte, yte) >= reference


def test_attention_equals_column_means_of_head_averaged_attention(fitted):
    """Recompute the attention matrix by hand from the network's weights."""
    model, _, _, Xte, _ = fitted
    X = Xte[:50]
    net = model.net_
    with torch.no_grad():
        x = torch.from_numpy((X - model.mean_) / model.scale_).float()
        parts = torch.split(x, [64, 96], dim=1)
        tokens = torch.stack([p(xi) for p, xi in zip(net.proj, parts, strict=True)], dim=1)
        tokens = tokens + net.source
        h = net.norm1(tokens)  # (B, M, P)
        q, k, _ = (h @ net.attn.in_proj_weight.T + net.attn.in_proj_bias).chunk(3, dim=-1)
        H, d = net.attn.num_heads, q.shape[-1] // net.attn.num_heads
        q = q.reshape(len(X), 2, H, d).transpose(1, 2)  # (B, H, M, d)
        k = k.reshape(len(X), 2, H, d).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)  # (B, H, M, M)
        expected = w.mean(dim=1).mean(dim=1).numpy()  # heads, then queries -> (B, M)
    got = model.attention(X)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    summary = model.attention_summary(X, np.zeros(len(X), dtype=int))
    np.testing.assert_allclose(summary["mean"], expected.mean(axis=0), atol=1e-5)


def test_same_seed_is_bit_identical_and_other_seed_differs():
    X, y = signal_and_noise(seed=1, n=300, da=16, db=24)
    kw = dict(widths=[16, 24], proj_dim=16, n_heads=2, max_epochs=4)
    a = DVMEClassifier(seed=3, **kw).fit(X, y)
    b = DVMEClassifier(seed=3, **kw).fit(X, y)
    c = DVMEClassifier(seed=4, **kw).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.predict(X), b.predict(X))
    assert np.array_equal(a.attention(X), b.attention(X))
    assert a.history_ == b.history_
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_fit_leaves_global_torch_rng_untouched():
    X, y = signal_and_noise(seed=1, n=120, da=8, db=8)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DVMEClassifier(widths=[8, 8], proj_dim=8, n_heads=2, max_epochs=2).fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_given_validation_set_drives_early_stopping_and_best_weights_are_kept():
    X, y = signal_and_noise(seed=2, n=600, da=16, db=16)
    model = DVMEClassifier(
        widths=[16, 16], proj_dim=16, n_heads=2, patience=3, max_epochs=200, seed=0
    ).fit(X[:400], y[:400], X_val=X[400:], y_val=y[400:])
    val_losses = [h["val_loss"] for h in model.history_]
    assert len(val_losses) == model.n_epochs_ < 200
    assert model.best_val_loss_ == min(val_losses)
    # stopped because the last `patience` epochs brought no drop larger than 1e-4
    assert min(val_losses[-3:]) >= min(val_losses[:-3]) - 1e-4
    # the kept weights are the best epoch's: their validation log-loss is the recorded minimum
    proba = model.predict_proba(X[400:])
    assert log_loss(y[400:], proba, labels=[0, 1, 2, 3]) == pytest.approx(
        model.best_val_loss_, rel=1e-4, abs=1e-6
    )


def test_three_backbones_of_different_widths():
    rng = np.random.default_rng(5)
    n, widths = 600, [12, 40, 7]
    y = rng.integers(0, 3, n)
    centres = [rng.standard_normal((3, w)) for w in widths]
    X = np.hstack([c[y] + 1.5 * rng.standard_normal((n, c.shape[1])) for c in centres])
    model = DVMEClassifier(widths=widths, proj_dim=32, n_heads=4, patience=5, seed=0)
    model.fit(X[:400], y[:400])
    proba = model.predict_proba(X[400:])
    assert proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert model.attention(X[400:]).shape == (200, 3)
    assert model.score(X[400:], y[400:]) > 0.8  # chance is 1/3
    assert model.n_epochs_ == len(model.history_) and model.best_val_loss_ is not None


def test_single_backbone_and_binary_string_labels():
    rng = np.random.default_rng(6)
    n = 400
    y = np.where(rng.random(n) < 0.5, "benign", "malignant")
    X = rng.standard_normal((n, 20)) + 2.0 * (y == "malignant")[:, None]
    model = DVMEClassifier(widths=[20], task="binary", proj_dim=16, n_heads=2, seed=0)
    model.fit(X[:300], y[:300])
    assert list(model.classes_) == ["benign", "malignant"]
    assert model.predict_proba(X[300:]).shape == (100, 2)
    assert set(model.predict(X[300:])) <= {"benign", "malignant"}
    assert model.score(X[300:], y[300:]) > 0.9
    np.testing.assert_allclose(model.attention(X[300:]), 1.0)  # one token attends to itself
    assert set(model.attention_summary(X[300:], y[300:])["per_class"]) == {"benign", "malignant"}


def test_multilabel_targets():
    rng = np.random.default_rng(7)
    n, widths = 900, [10, 14]
    X = rng.standard_normal((n, 24)).astype(np.float32)
    # label 0 from backbone A, label 1 from backbone B, label 2 needs both
    Y = np.stack([X[:, 0] > 0, X[:, 10] > 0, X[:, 1] + X[:, 11] > 0], axis=1).astype(np.uint8)
    model = DVMEClassifier(widths=widths, task="multilabel", proj_dim=32, n_heads=4, seed=0)
    model.fit(X[:600], Y[:600])
    proba = model.predict_proba(X[600:])
    assert proba.shape == (300, 3) and ((proba > 0) & (proba < 1)).all()
    pred = model.predict(X[600:])
    assert pred.shape == (300, 3) and set(np.unique(pred)) <= {0, 1}
    assert np.array_equal(pred, (proba >= 0.5).astype(int))
    per_label = (pred == Y[600:]).mean(axis=0)
    assert (per_label > 0.85).all(), per_label
    # multilabel score = mean per-label accuracy, the one selection criterion (issue 14)
    assert model.score(X[600:], Y[600:]) == pytest.approx(np.mean(pred == Y[600:]))
    summary = model.attention_summary(X[600:], Y[600:])
    assert set(summary["per_class"]) == {0, 1, 2}


def test_stratified_validation_split_keeps_class_proportions():
    X, y = signal_and_noise(seed=8, n=400, da=8, db=8)
    y = np.where(np.arange(400) < 40, 9, y)  # a rare class: 40 of 400 rows
    model = DVMEClassifier(widths=[8, 8], proj_dim=8, n_heads=2, max_epochs=1, val_fraction=0.25)
    model.fit(X, y)
    codes = np.searchsorted(model.classes_, y)
    tr, va = holdout_rows(codes, 0.25, 0, multilabel=False)
    assert np.sum(y[va] == 9) == 10 and len(np.intersect1d(tr, va)) == 0
    for c in np.unique(y):
        assert np.sum(y[va] == c) == round(0.25 * np.sum(y == c))
    # the scaler is fitted on the training part only
    np.testing.assert_allclose(model.mean_, X[tr].mean(axis=0), atol=1e-6)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((10, 15)), np.arange(10) % 2, "15 columns but widths=.* sum to 16"),
        (np.zeros(16), np.arange(1), "must be 2-D"),
        (np.zeros((10, 16)), np.arange(9) % 2, "9 entries but its X has 10 rows"),
        (np.full((10, 16), np.nan), np.arange(10) % 2, "NaN or Inf in 10 row"),
        (np.zeros((10, 16)), np.zeros(10), "at least 2"),
    ],
)
def test_invalid_inputs_say_what_was_expected(X, y, match):
    with pytest.raises((InvalidDataError, ProtocolError), match=match):
        DVMEClassifier(widths=[8, 8], proj_dim=8, n_heads=2).fit(X, y)


def test_parameter_and_state_errors():
    X, y = signal_and_noise(seed=9, n=60, da=8, db=8)
    with pytest.raises(InvalidDataError, match="not fitted"):
        DVMEClassifier(widths=[8, 8]).predict(X)
    with pytest.raises(InvalidDataError, match="multiple of n_heads"):
        DVMEClassifier(widths=[8, 8], proj_dim=10, n_heads=3).fit(X, y)
    with pytest.raises(InvalidDataError, match="positive integers"):
        DVMEClassifier(widths=[8, 0]).fit(X, y)
    with pytest.raises(ProtocolError, match="exactly 2 classes"):
        DVMEClassifier(widths=[8, 8], task="binary").fit(X, y)
    with pytest.raises(InvalidDataError, match="both X_val and y_val"):
        DVMEClassifier(widths=[8, 8]).fit(X, y, X_val=X)
    model = DVMEClassifier(widths=[8, 8], proj_dim=8, n_heads=2, max_epochs=1).fit(X, y)
    with pytest.raises(InvalidDataError, match="20 columns but widths"):
        model.predict(np.zeros((3, 20)))
    with pytest.raises(ProtocolError, match="one row per class"):
        DVMEClassifier(widths=[8, 8]).fit(X[:3], np.arange(3))
    no_val = DVMEClassifier(widths=[8, 8], proj_dim=8, n_heads=2, max_epochs=3, val_fraction=0)
    no_val.fit(X, y)
    assert no_val.n_epochs_ == 3 and no_val.best_val_loss_ is None
    with pytest.raises(InvalidDataError, match="labels not seen"):
        model.fit(X, y, X_val=X[:5], y_val=np.full(5, 7))

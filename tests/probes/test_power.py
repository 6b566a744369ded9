"""The vectorised Yeo-Johnson against scikit-learn's PowerTransformer (SciPy's per-column search)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import PowerTransformer

from embedstore.probes.power import YeoJohnson, yeojohnson_transform


def _features(n, d, seed=0):
    """Non-negative, skewed columns like pooled CNN features, a few signed, one constant."""
    rng = np.random.default_rng(seed)
    X = np.maximum(0, rng.normal(size=(n, d)) + rng.normal(size=d)) * rng.gamma(2, size=d)
    X[:, :3] -= 0.5
    X[:, 3] = 0.25
    return X.astype(np.float32)


@pytest.mark.parametrize("n,d", [(5, 20), (60, 40), (400, 30)])
def test_matches_power_transformer_on_float32(n, d):
    X = _features(n, d, seed=n)
    ref = PowerTransformer(method="yeo-johnson", standardize=True).fit(X)
    ours = YeoJohnson().fit(X)
    # SciPy stops within xtol=1.48e-8 of the optimum, in float32 arithmetic: lambdas agree to
    # that tolerance where the likelihood is sharply curved, and the transformed data closely
    np.testing.assert_allclose(ours.lambdas_, ref.lambdas_, atol=5e-3 if n < 10 else 1e-4)
    Xt = _features(50, d, seed=99)
    np.testing.assert_allclose(ours.transform(Xt), ref.transform(Xt), atol=2e-4)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), atol=2e-4)
    assert ours.lambdas_[3] == 1.0  # a constant column is left as it is


def test_transform_is_scipys():
    from scipy import stats

    x = np.array([-3.0, -0.5, 0.0, 0.2, 4.0])
    for lam in (-1.0, 0.0, 0.5, 2.0, 3.0):
        np.testing.assert_allclose(
            yeojohnson_transform(x[:, None], [lam])[:, 0], stats.yeojohnson(x, lam)
        )

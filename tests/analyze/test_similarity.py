"""CKA against the Gram-matrix form written out in numpy, its invariances, and the store path."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from embedstore import create_store
from embedstore.analyze import backbone_similarity, linear_cka
from embedstore.errors import InvalidDataError
from tests.conftest import make_dataset, write_embeddings


def _hsic_gram(k: np.ndarray, l: np.ndarray, unbiased: bool) -> float:  # noqa: E741
    """HSIC from n×n Gram matrices: biased tr(HKHHLH) (Gretton et al. 2005), or the unbiased
    estimator of Song et al. 2012, eq. 5, term by term."""
    n = k.shape[0]
    if not unbiased:
        h = np.eye(n) - np.ones((n, n)) / n
        return float(np.trace(h @ k @ h @ h @ l @ h))
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    term = (
        np.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ kt @ lt @ one)
    )
    return float(term / (n * (n - 3)))


def _cka_gram(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    k, l = x @ x.T, y @ y.T  # noqa: E741
    return _hsic_gram(k, l, unbiased) / np.sqrt(
        _hsic_gram(k, k, unbiased) * _hsic_gram(l, l, unbiased)
    )


@pytest.fixture
def reps() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6))
    y = np.tanh(x @ rng.normal(size=(6, 9))) + 0.5 * rng.normal(size=(30, 9))
    return x, y


@pytest.mark.parametrize("debiased", [False, True])
def test_matches_gram_matrix_form(reps, debiased):
    x, y = reps
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(_cka_gram(x, y, debiased), rel=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_matches_gram_form_when_dim_exceeds_samples(debiased):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 40)), rng.normal(size=(8, 25))  # the n×n route of _cross
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(_cka_gram(x, y, debiased), rel=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_one_with_itself_and_invariant_to_rotation_and_scale(reps, debiased):
    x, y = reps
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0)
    q = ortho_group.rvs(9, random_state=1)
    base = linear_cka(x, y, debiased=debiased)
    assert linear_cka(x, 3.7 * (y @ q), debiased=debiased) == pytest.approx(base, rel=1e-9)
    q6 = ortho_group.rvs(6, random_state=2)
    assert linear_cka(0.01 * (x @ q6), y, debiased=debiased) == pytest.approx(base, rel=1e-9)
    assert base < 0.99  # not trivially 1


def test_not_invariant_to_anisotropic_scaling(reps):
    x, y = reps
    stretched = y * np.array([10.0] + [1.0] * 8)
    assert abs(linear_cka(x, stretched) - linear_cka(x, y)) > 1e-3


def test_debiased_near_zero_for_independent_features():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(400, 50)), rng.normal(size=(400, 50))
    assert linear_cka(x, y, debiased=True) == pytest.approx(0.0, abs=0.03)
    assert linear_cka(x, y) > 0.08  # the biased estimate is inflated by dim/n


def test_bad_input():
    with pytest.raises(InvalidDataError, match="same samples"):
        linear_cka(np.ones((5, 2)), np.ones((6, 2)))
    with pytest.raises(InvalidDataError, match="at least 4"):
        linear_cka(np.ones((3, 2)), np.ones((3, 2)))


def test_backbone_similarity_from_store(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    _, _, split = make_dataset(store, n=50)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 8)).astype(np.float32)
    b = (a @ ortho_group.rvs(8, random_state=0) * 2.0).astype(np.float32)  # same as a
    c = rng.normal(size=(50, 5)).astype(np.float32)
    for name, x in (("a", a), ("b", b), ("c", c)):
        write_embeddings(store, "toy", name, x)
    m = backbone_similarity(store, "toy")
    assert m.backbones == ("a", "b", "c")
    test = split == 2
    assert m.n == int(test.sum())
    assert m.cka[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert m.cka[0, 2] == pytest.approx(linear_cka(a[test], c[test]), rel=1e-6)
    assert m.cka_debiased[1, 2] == pytest.approx(
        linear_cka(b[test], c[test], debiased=True), rel=1e-5, abs=1e-6
    )
    assert np.allclose(m.cka, m.cka.T)
    records = m.to_records()
    assert len(records) == 6  # pairs i <= j
    assert records[1].features == ("a", "b")
    assert records[1].settings == {"split": "test", "kernel": "linear"}
    assert "a" in records[1].provenance and "b" in records[1].provenance


def test_backbone_similarity_resolves_tags_and_the_timm_slash_spelling(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=50)
    rng = np.random.default_rng(0)
    names = ("resnet50.dino", "timm--convnext_tiny.fb_in1k")  # how `extract` stores timm/...
    for name in names:
        write_embeddings(store, "toy", name, rng.normal(size=(50, 4)).astype(np.float32))
    m = backbone_similarity(store, "toy", backbones=["dino", "timm/convnext_tiny.fb_in1k"])
    assert m.backbones == names
    assert np.array_equal(m.cka, backbone_similarity(store, "toy", backbones=names).cka)


def test_backbone_similarity_errors(toy_store):
    store, _ = toy_store
    with pytest.raises(InvalidDataError, match="at least two"):
        backbone_similarity(store, "toy")
    with pytest.raises(InvalidDataError, match="split must be"):
        backbone_similarity(store, "toy", backbones=["bb", "bb2"], split="testing")

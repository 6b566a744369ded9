"""Invariance: a model flip-invariant by construction scores 1 for flips and less for rotations;
the whitening against hand-computed and scipy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis

from embedstore import open_store
from embedstore.analyze.invariance import TRANSFORMS, evaluate_invariance, whiten, whitening
from embedstore.data import ArraySource
from embedstore.errors import InvalidDataError

from .conftest import images


def test_whitening_hand_case():
    x = np.array([[2.0, 1.0], [-2.0, -1.0], [2.0, -1.0], [-2.0, 1.0]])
    # cov (ddof=1) = diag(16/3, 4/3) -> inverse diag(3/16, 3/4) -> L = diag(√3/4, √3/2)
    mean, chol = whitening(x, eps=0.0)
    assert np.allclose(mean, 0.0)
    assert np.allclose(chol, np.diag([np.sqrt(3) / 4, np.sqrt(3) / 2]))
    assert np.allclose(whiten(x[:1], mean, chol), [[np.sqrt(3) / 2, np.sqrt(3) / 2]])


def test_whitening_gives_mahalanobis_and_identity_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 3.0
    mean, chol = whitening(x, eps=0.0)
    assert np.allclose(chol, np.tril(chol))  # lower triangular
    z = whiten(x, mean, chol)
    assert np.allclose(np.cov(z, rowvar=False), np.eye(5), atol=1e-8)
    inv_cov = np.linalg.inv(np.cov(x, rowvar=False))
    for i, j in ((0, 1), (5, 17), (3, 150)):
        ref = mahalanobis(x[i], x[j], inv_cov)
        assert np.linalg.norm(z[i] - z[j]) == pytest.approx(ref, rel=1e-9)


def test_flip_invariant_model(extracted):
    path, src, _ = extracted
    store = open_store(path)
    records = list(
        evaluate_invariance(
            store,
            "toy",
            ["flipavg.test"],
            transforms="h_flip,v_flip,rotation",
            source=src,
            n_images=10,
            steps=4,
            seed=1,
        )  # fmt: skip
    )
    by_t = {r.setting: r for r in records}
    assert by_t["h_flip"].metrics["cosine"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert by_t["v_flip"].metrics["cosine"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert by_t["h_flip"].metrics["mahalanobis"]["value"] == pytest.approx(0.0, abs=1e-4)
    rot = by_t["rotation"]
    assert rot.metrics["cosine"]["value"] < 0.95
    assert list(rot.extra["per_param"]) == ["90°", "180°", "270°"]
    # 180° is the double flip: exactly invariant; 90° and 270° are not
    assert rot.extra["per_param"]["180°"] == pytest.approx(1.0, abs=1e-6)
    assert rot.extra["per_param"]["90°"] < 0.95
    assert rot.n == 10 and rot.settings == {"n_images": 10, "steps": 4, "seed": 1, "eps": 1e-6}
    assert rot.extra["recomputed_vs_stored_rel_diff"] < 1e-5
    assert rot.extra["identical_views"] == 0.0  # random colour images: every view differs
    assert rot.provenance["flipavg.test"]["backbone"]["name"] == "flipavg.test"


def test_every_transformation_runs_and_resume_skips_done_work(extracted):
    path, src, _ = extracted
    store = open_store(path)
    calls = []
    first = list(
        evaluate_invariance(
            store,
            "toy",
            ["flipavg.test"],
            source=src,
            n_images=3,
            steps=2,
            progress=lambda d, t, s: calls.append(s),
        )  # fmt: skip
    )
    assert [r.setting for r in first] == list(TRANSFORMS)
    for r in first:
        value = r.metrics["cosine"]["value"]
        assert value is not None and -1.0 <= value <= 1.0 + 1e-9, r.setting
    assert calls
    calls.clear()
    again = list(
        evaluate_invariance(
            store,
            "toy",
            ["flipavg.test"],
            source=src,
            n_images=3,
            steps=2,
            done=first,
            progress=lambda d, t, s: calls.append(s),
        )  # fmt: skip
    )
    assert again == first and not calls


def test_wrong_images_are_refused(extracted):
    path, _, imgs = extracted
    other = ArraySource(images(seed=9), np.arange(len(imgs)) % 2)
    with pytest.raises(InvalidDataError, match="differs from its stored embeddings"):
        list(evaluate_invariance(open_store(path), "toy", ["flipavg.test"], source=other,
                                 transforms="h_flip", n_images=4))  # fmt: skip


def test_bad_arguments(extracted):
    store = open_store(extracted[0])
    with pytest.raises(InvalidDataError, match="unknown transformation"):
        list(evaluate_invariance(store, "toy", ["flipavg.test"], transforms="twirl"))
    with pytest.raises(InvalidDataError, match="steps must be"):
        list(evaluate_invariance(store, "toy", ["flipavg.test"], steps=1))


def test_colour_views_of_grey_images_are_flagged_identical(tmp_path, tiny_backbones):
    from embedstore import extract

    grey = images(12)[..., 0]  # (n, H, W): R = G = B after decoding
    src = ArraySource(grey, np.arange(12) % 2)
    extract(tmp_path / "g.zarr", dataset="g", source=src, backbones=["flipavg.test"],
            dtype="float32", workers=0, device="cpu", batch_size=4)  # fmt: skip
    records = list(
        evaluate_invariance(
            open_store(tmp_path / "g.zarr"),
            "g",
            ["flipavg.test"],
            source=src,
            transforms="grayscale,saturation,rotation",
            n_images=3,
            steps=3,
        )  # fmt: skip
    )
    flags = {r.setting: r.extra["identical_views"] for r in records}
    assert flags == {"grayscale": 1.0, "saturation": 1.0, "rotation": 0.0}

"""Occlusion saliency against a hand-written loop, a model that sees one region only, and the
attentive diffusion of small maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedstore import open_store
from embedstore.analyze.saliency import (
    attentive_diffusion,
    evaluate_saliency,
    occlusion_map,
    window_starts,
)
from embedstore.errors import InvalidDataError


def _reference_map(w: np.ndarray, x: np.ndarray, size: int, stride: int) -> np.ndarray:
    """The authors' loop (saliency.py) on f(x) = W·vec(x), with numpy and a coverage count."""
    _, h, wd = x.shape
    f = w @ x.ravel()
    scores, counts = np.zeros((h, wd)), np.zeros((h, wd))
    rows = sorted(set(range(0, h - size + 1, stride)) | {h - size})
    cols = sorted(set(range(0, wd - size + 1, stride)) | {wd - size})
    for i in rows:
        for j in cols:
            xo = x.copy()
            xo[:, i : i + size, j : j + size] = 0.0
            rrse = np.sqrt(np.sum((f - w @ xo.ravel()) ** 2)) / np.sqrt(np.sum(f**2))
            scores[i : i + size, j : j + size] += rrse
            counts[i : i + size, j : j + size] += 1
    return (scores / counts)[size - 1 : h - size + 1, size - 1 : wd - size + 1]


@pytest.mark.parametrize("stride", [1, 2])
def test_map_matches_hand_computation(stride):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 9, 9))
    w = rng.normal(size=(5, x.size))
    lin = torch.nn.Linear(x.size, 5, bias=False, dtype=torch.float64)
    lin.weight.data = torch.from_numpy(w)

    def model(t):
        return lin(t.flatten(1))

    got = occlusion_map(model, torch.from_numpy(x), size=3, stride=stride, batch_size=7)
    assert got.shape == (5, 5)
    assert np.allclose(got, _reference_map(w, x, 3, stride), rtol=1e-10)


def test_stride_one_divides_by_size_squared():
    """At stride 1 the kept region is covered by exactly size² windows (the authors' /size²)."""
    x = torch.ones(3, 8, 8, dtype=torch.float64)
    got = occlusion_map(lambda t: t.flatten(1), x, size=3, stride=1)
    # every window removes 27 of 192 ones: rrse = sqrt(27/192), the same for every window
    assert np.allclose(got, np.sqrt(27 / 192))


def test_window_starts():
    assert window_starts(10, 3, 1) == list(range(8))
    assert window_starts(10, 3, 4) == [0, 4, 7]
    assert window_starts(242, 10, 8)[-1] == 232


def test_attentive_diffusion_hand_cases():
    assert attentive_diffusion(np.array([[0.0, 0.0], [0.0, 4.0]])) == 25.0
    assert attentive_diffusion(np.array([[1.0, 2.0], [3.0, 4.0]])) == 50.0
    assert attentive_diffusion(np.ones((3, 3))) == 0.0


def test_region_model_map_is_zero_outside_the_region(extracted):
    path, src, _ = extracted
    size = 3
    records = list(
        evaluate_saliency(
            open_store(path),
            "toy",
            ["region.test"],
            source=src,
            n_images=2,
            image_size=16,
            size=size,
            stride=1,
        )  # fmt: skip
    )
    images = [r for r in records if r.analysis == "saliency_image"]
    summary = [r for r in records if r.analysis == "saliency"]
    assert len(images) == 2 and len(summary) == 1
    m = np.array(images[0].extra["map"])
    assert m.shape == (12, 12) and images[0].extra["map_shape"] == [12, 12]
    # map pixel (a, b) is image pixel (a + 2, b + 2); a window covering it can reach the region
    # (rows 4..7, cols 8..11) only if it is within size - 1 of it on both axes
    rr, cc = np.meshgrid(np.arange(12) + size - 1, np.arange(12) + size - 1, indexing="ij")
    dr = np.maximum(0, np.maximum(4 - rr, rr - 7))
    dc = np.maximum(0, np.maximum(8 - cc, cc - 11))
    reach = (dr <= size - 1) & (dc <= size - 1)
    assert np.all(m[~reach] == 0.0)
    inside = (dr == 0) & (dc == 0)
    assert np.all(m[inside] > 0.0)
    ad = images[0].metrics["attentive_diffusion"]["value"]
    assert ad == pytest.approx(attentive_diffusion(m))
    assert 0 < ad < 100 * reach.mean()
    values = [r.metrics["attentive_diffusion"]["value"] for r in images]
    assert summary[0].metrics["attentive_diffusion"]["value"] == pytest.approx(np.mean(values))
    assert summary[0].n == 2


def test_resume_recomputes_nothing(extracted):
    path, src, _ = extracted
    store = open_store(path)
    kw = dict(source=src, n_images=2, image_size=16, size=3, stride=2)
    first = list(evaluate_saliency(store, "toy", ["region.test"], **kw))
    calls = []
    again = list(
        evaluate_saliency(
            store, "toy", ["region.test"], done=first, progress=lambda *a: calls.append(a), **kw
        )  # fmt: skip
    )
    assert again == first and not calls
    partial = [r for r in first if r.analysis == "saliency_image"][:1]
    resumed = list(evaluate_saliency(store, "toy", ["region.test"], done=partial,
                                     progress=lambda *a: calls.append(a), **kw))  # fmt: skip
    assert len(calls) == 1  # only the second image was computed
    assert resumed[-1].metrics == first[-1].metrics


def test_bad_window(extracted):
    store = open_store(extracted[0])
    with pytest.raises(InvalidDataError, match="mask"):
        list(evaluate_saliency(store, "toy", ["region.test"], image_size=8, size=10))
    for stride in (0, 4):  # 4 > mask 3 would leave pixels no window covers
        with pytest.raises(InvalidDataError, match="stride must be 1..3"):
            occlusion_map(lambda t: t.flatten(1), torch.ones(3, 8, 8), size=3, stride=stride)

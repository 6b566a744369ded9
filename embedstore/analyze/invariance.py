"""Invariance of a backbone's features to image transformations (Anton et al. 2022 §4.4.3, after
Ericsson et al. 2021, "Why do self-supervised models transfer?").

Definition, from the authors' code (jonahanton/SSL_medicalimaging ``invariances/invariances.py``,
itself modified from linusericsson/ssl-invariances ``eval_synthetic_invariance.py``): features are
whitened with the Cholesky factor L of the inverse feature covariance (Σ⁻¹ = L Lᵀ, Σ + 1e-6·I),
``z = (f - mean) @ L`` for row vectors — Lᵀ(f − mean) in column form, so that ||z_a − z_b|| is the
Mahalanobis distance (the authors write ``(mean - f) @ L``; the sign cancels in a cosine) — and
the invariance to a transformation t is the cosine similarity of z(f(x)) and z(f(t_θ(x))),
averaged over the transformation's parameters θ and over images. The Mahalanobis distance is
reported beside it, as the authors do.

Where embedstore departs from that code, and why:
- The untransformed features f(x) and the mean and covariance come from the store (every valid
  row of the dataset), not from a fresh pass over ≥1000 sampled images: they are the same numbers,
  already paid for. A few rows are recomputed first and must match the store (else the images,
  preprocessing or weights differ and the comparison would be meaningless).
- Every view goes through the backbone's own preprocessing (``spec.preprocess``, what the stored
  features went through); the authors resize to 256 and centre-crop 224 for every model.
- Grids default to ``steps=8`` values per transformation instead of the authors' k=256, so that a
  CPU run takes minutes; ``steps`` sets it. The identity parameter (rotation 0°, no flip, no
  grey-scale) is left out: the authors average it in, which pulls every score toward 1 by 1/k
  (by half for flips, where k=2).
- Images are drawn without replacement (the authors' ``np.random.choice`` draws with it), from
  all splits, as the authors concatenate train and test.
- ``multi_view``: several random resized crops of the same image (torchvision's
  RandomResizedCrop parameters), each against the untransformed image. The authors'
  ``invariances_multiview.py`` pairs a CheXpert study's frontal and lateral radiographs, which
  exist only for that dataset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as F

from embedstore.analyze._images import (
    ImageBackbone,
    load_rgb,
    open_dataset_source,
    resolve_device,
    sample_rows,
)
from embedstore.analyze.records import AnalysisResult, mean_ci
from embedstore.data import Source
from embedstore.errors import InvalidDataError

__all__ = ["TRANSFORMS", "Transformation", "whitening", "whiten", "evaluate_invariance"]

View = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Transformation:
    """A named family of image transformations; ``views(steps, size)`` lists (label, function)."""

    name: str
    description: str
    views: Callable[[int, int], list[tuple[str, View]]]


def _grid(lo: float, hi: float, steps: int, identity: float) -> list[float]:
    # The authors' grids: torch.linspace(lo, hi, k); the identity value itself is left out.
    return [float(v) for v in np.linspace(lo, hi, steps) if not math.isclose(v, identity)]


def _fixed(fn: Callable[[Image.Image, Any], Image.Image], arg: Any) -> View:
    """The view ``fn(img, arg)``: the same for every image (the generator is not used)."""

    def view(img: Image.Image, g: np.random.Generator) -> Image.Image:
        return fn(img, arg)

    return view


def _colour(fn: Callable[[Image.Image, float], Image.Image], lo: float, hi: float, ident: float):
    def views(steps: int, size: int) -> list[tuple[str, View]]:
        return [(f"{v:.3g}", _fixed(fn, v)) for v in _grid(lo, hi, steps, ident)]

    return views


def _rotation(steps: int, size: int) -> list[tuple[str, View]]:
    # authors: torch.linspace(0, 360, k + 1)[:k], F.rotate without expanding (black corners)
    angles = [360.0 * i / steps for i in range(1, steps)]
    return [(f"{a:.4g}°", _fixed(F.rotate, a)) for a in angles]


def _blur(steps: int, size: int) -> list[tuple[str, View]]:
    # authors: sigma = linspace(1e-5, 20, k), kernel_size = 1 + 2 * (crop_size // 20); the
    # first sigma (1e-5) is the identity and is left out.
    kernel = 1 + 2 * (size // 20)
    sigmas = [float(s) for s in np.linspace(1e-5, 20.0, steps)[1:]]

    def blur(img: Image.Image, sigma: float) -> Image.Image:
        return F.gaussian_blur(img, kernel, sigma)

    return [(f"σ={s:.3g}", _fixed(blur, s)) for s in sigmas]


def _resized_crop(steps: int, size: int) -> list[tuple[str, View]]:
    # authors: top, left in linspace(0, 0.25, n) and height, width in linspace(0.75, 0.25, n) of
    # the image, n = k ** (1/4) per coordinate (n^4 crops), resized to the crop size. Here in
    # fractions of each image's own height and width; n >= 2.
    n = max(2, int(round(steps**0.25)))
    starts, extents = np.linspace(0, 0.25, n), np.linspace(0.75, 0.25, n)
    boxes = [(t, l, h, w) for t in starts for l in starts for h in extents for w in extents]  # noqa: E741

    def crop(img: Image.Image, box: tuple[float, ...]) -> Image.Image:
        t, l, h, w = box  # noqa: E741
        W, H = img.size
        return F.resized_crop(
            img, round(t * H), round(l * W), max(1, round(h * H)), max(1, round(w * W)), [size]
        )

    return [(f"{b}", _fixed(crop, b)) for b in boxes]


def _random_crop_box(img: Image.Image, g: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3, 10 tries, else
    the centre crop), drawn from a numpy generator so that each image's views are seeded."""
    width, height = img.size
    area = width * height
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * g.uniform(0.08, 1.0)
        ratio = math.exp(g.uniform(*log_ratio))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            return int(g.integers(0, height - h + 1)), int(g.integers(0, width - w + 1)), h, w
    side = min(width, height)
    return (height - side) // 2, (width - side) // 2, side, side


def _multi_view(steps: int, size: int) -> list[tuple[str, View]]:
    def view(img: Image.Image, g: np.random.Generator) -> Image.Image:
        return F.resized_crop(img, *_random_crop_box(img, g), [size, size])

    return [(f"view {i + 1}", view) for i in range(steps)]


TRANSFORMS: dict[str, Transformation] = {
    t.name: t
    for t in (
        Transformation("h_flip", "horizontal flip", lambda s, z: [("flip", lambda i, g: F.hflip(i))]),
        Transformation("v_flip", "vertical flip", lambda s, z: [("flip", lambda i, g: F.vflip(i))]),
        Transformation("rotation", "rotation by 360·i/steps degrees", _rotation),
        Transformation("hue", "hue shift in [-0.5, 0.5]", _colour(F.adjust_hue, -0.5, 0.5, 0.0)),
        Transformation("saturation", "saturation factor in [0.25, 5]",
                       _colour(F.adjust_saturation, 0.25, 5.0, 1.0)),
        Transformation("brightness", "brightness factor in [0.25, 5]",
                       _colour(F.adjust_brightness, 0.25, 5.0, 1.0)),
        Transformation("contrast", "contrast factor in [0.25, 5]",
                       _colour(F.adjust_contrast, 0.25, 5.0, 1.0)),
        Transformation("grayscale", "grey-scale",
                       lambda s, z: [("grey", lambda i, g: F.rgb_to_grayscale(i, 3))]),
        Transformation("resized_crop", "fixed grid of resized crops (authors' grid)", _resized_crop),
        Transformation("multi_view", "random resized crops (scale 0.08-1)", _multi_view),
        Transformation("blur", "Gaussian blur, sigma in (0, 20]", _blur),
    )
}  # fmt: skip


def whitening(features: np.ndarray, *, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Mean and lower Cholesky factor L of (Σ + eps·I)⁻¹, Σ the sample covariance (np.cov).

    Args:
        features: array of shape (n_samples, dim).

    Returns:
        mean (dim,) and L (dim, dim) float64, with L Lᵀ = (Σ + eps·I)⁻¹.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InvalidDataError(
            f"whitening needs features of shape (n_samples >= 2, dim), got {x.shape}"
        )
    cov = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]) + eps * np.eye(x.shape[1])
    inv = np.linalg.inv(cov)
    try:
        chol = np.linalg.cholesky((inv + inv.T) / 2)
    except np.linalg.LinAlgError:
        raise InvalidDataError(
            f"the feature covariance of {x.shape[0]} samples × {x.shape[1]} dims is not "
            f"positive definite even with eps={eps}; pass a larger eps"
        ) from None
    return x.mean(axis=0), chol


def whiten(features: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """(f - mean) @ L for row vectors: squared norms of differences are Mahalanobis distances."""
    return (np.asarray(features, dtype=np.float64) - mean) @ chol


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine over the last axis; NaN where a vector is zero."""
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.sum(a * b, axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def parse_transforms(names: str | Sequence[str]) -> list[str]:
    """'all', 'h_flip,rotation' or a list -> validated names."""
    items = names.split(",") if isinstance(names, str) else list(names)
    items = [n.strip() for n in items if n.strip()]
    if items == ["all"]:
        return list(TRANSFORMS)
    unknown = [n for n in items if n not in TRANSFORMS]
    if unknown or not items:
        raise InvalidDataError(
            f"unknown transformation(s) {unknown or items}; expected 'all' or a comma list of "
            f"{', '.join(TRANSFORMS)}"
        )
    return list(dict.fromkeys(items))


def invariance_settings(n_images: int, steps: int, seed: int, eps: float) -> dict[str, Any]:
    return {"n_images": int(n_images), "steps": int(steps), "seed": int(seed), "eps": float(eps)}


def evaluate_invariance(
    store: Any,
    dataset: str,
    backbones: Sequence[str],
    *,
    transforms: str | Sequence[str] = "all",
    source: str | Source | None = None,
    n_images: int = 1000,
    steps: int = 8,
    seed: int = 0,
    eps: float = 1e-6,
    batch_size: int = 64,
    device: str = "cpu",
    weights: dict[str, str] | None = None,
    done: Sequence[AnalysisResult] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> Iterator[AnalysisResult]:
    """Yield one record per (backbone, transformation), as each is finished.

    Metric ``cosine``: mean over images of the per-image mean (over the transformation's
    parameters) whitened cosine similarity, with mean ± 1.96·σ/√n; ``mahalanobis`` likewise.
    Records in ``done`` with the same key (a previous run's ``--out``) are yielded again, not
    recomputed.

    Args:
        store: an open Store holding the backbones' embeddings for ``dataset``.
        source: where the images are (default: the source recorded in the dataset).
        n_images: images drawn (seeded, without replacement) from the dataset's valid rows.
        steps: grid size of each parametrised transformation (views per image).
        weights: {backbone: checkpoint path} for backbones loaded from local files.
    """
    names = list(backbones)
    if not names:
        raise InvalidDataError("no backbone given; pass at least one (--backbone NAME)")
    chosen = parse_transforms(transforms)
    if steps < 2:
        raise InvalidDataError(f"steps must be >= 2, got {steps}")
    if batch_size < 1:
        raise InvalidDataError(f"batch_size must be >= 1, got {batch_size}")
    settings = invariance_settings(n_images, steps, seed, eps)
    previous = {r.key(): r for r in done}
    dev = resolve_device(device)
    for name in names:
        store.array_info(dataset, name)  # fail early on an unknown backbone
    opened: tuple[Source, np.ndarray] | None = None  # the images, opened on first need
    for name in names:
        keys = {
            t: AnalysisResult("invariance", dataset, (name,), t, {}, settings, 0).key()
            for t in chosen
        }
        todo = [t for t in chosen if keys[t] not in previous]
        for t in chosen:
            if keys[t] in previous:
                yield previous[keys[t]]
        if not todo:
            continue
        if opened is None:
            opened = open_dataset_source(store, dataset, source)
        src, src_index = opened
        bb = ImageBackbone.open(store, dataset, name, weights=(weights or {}).get(name), device=dev)
        valid = store.valid_rows(dataset, name)
        mean, chol = whitening(store.embeddings(dataset, name)[valid], eps=eps)
        rows = sample_rows(valid, n_images, seed)
        check = bb.check_against_store(store, dataset, src, rows, src_index)
        clean = whiten(store.embeddings(dataset, name, rows=rows), mean, chol)  # (n, dim)
        for t in todo:
            yield _one(bb, src, src_index, rows, clean, mean, chol, TRANSFORMS[t], settings,
                       dataset, check, int(valid.sum()), batch_size, progress)  # fmt: skip


def _one(
    bb: ImageBackbone,
    src: Source,
    src_index: np.ndarray,
    rows: np.ndarray,
    clean: np.ndarray,
    mean: np.ndarray,
    chol: np.ndarray,
    t: Transformation,
    settings: dict[str, Any],
    dataset: str,
    check: float,
    n_cov: int,
    batch_size: int,
    progress: Callable[[int, int, str], None] | None,
) -> AnalysisResult:
    t0 = time.perf_counter()
    pre = bb.loaded.spec.preprocess
    size = int(pre.resize or pre.crop or 224)
    views = t.views(settings["steps"], size)
    n, v = len(rows), len(views)
    cos = np.full((n, v), np.nan)
    dist = np.full((n, v), np.nan)
    per_batch = max(1, batch_size // v)
    identical = 0  # views whose pixels equal the untransformed image's (grey-scale of grey)
    for start in range(0, n, per_batch):
        chunk = np.arange(start, min(n, start + per_batch))
        tensors = []
        for i in chunk:
            img = load_rgb(src, int(src_index[rows[i]]))
            g = np.random.default_rng([settings["seed"], int(rows[i])])
            plain = bb.transform(img)
            for _, fn in views:
                tensors.append(bb.transform(fn(img, g)))
                identical += int(torch.equal(tensors[-1], plain))
        feats = np.concatenate(
            [bb.features(tensors[s : s + batch_size]) for s in range(0, len(tensors), batch_size)]
        )
        z = whiten(feats, mean, chol).reshape(len(chunk), v, -1)  # (B, V, dim)
        cos[chunk] = _cosine(clean[chunk][:, None, :], z)
        dist[chunk] = np.linalg.norm(clean[chunk][:, None, :] - z, axis=-1)
        if progress is not None:
            progress(int(chunk[-1]) + 1, n, f"{bb.name} · {t.name}")
    with np.errstate(invalid="ignore"):
        per_image = np.nanmean(cos, axis=1)
        per_param = np.nanmean(cos, axis=0)
    return AnalysisResult(
        analysis="invariance",
        dataset=dataset,
        features=(bb.name,),
        setting=t.name,
        metrics={"cosine": mean_ci(per_image), "mahalanobis": mean_ci(np.nanmean(dist, axis=1))},
        settings=settings,
        n=n,
        provenance={bb.name: bb.provenance},
        extra={
            "description": t.description,
            "per_param": {label: _num(c) for (label, _), c in zip(views, per_param, strict=True)},
            "views_per_image": v,
            "identical_views": identical / (n * v) if n else 0.0,
            "covariance_rows": n_cov,
            "dim": int(clean.shape[1]),
            "recomputed_vs_stored_rel_diff": check,
            "seconds": round(time.perf_counter() - t0, 3),
        },
    )


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None

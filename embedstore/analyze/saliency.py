"""Occlusion saliency and attentive diffusion (Anton et al. 2022 §4.4.1, after Ericsson et al.
2021, "How well do self-supervised models transfer?", §5).

Definitions, from the authors' code (jonahanton/SSL_medicalimaging ``saliency.py``,
``compute_saliency_map``; the earlier ``occlusion_saliency.py`` is the same loop):
- the image is resized (bicubic) and centre-cropped to 242×242 and normalised;
- a size×size window (10×10) of zeros — the mean colour after normalisation — is slid over it,
  and each occluded image's features f_o are compared with the original's f by what the authors
  call the root relative squared error, ||f − f_o||₂ / ||f||₂;
- each window's score is added to every pixel it covers, the sum divided by size², and the border
  (size − 1 pixels on each side, where fewer windows overlap) cropped off: a 224×224 map;
- attentive diffusion = 100 × the fraction of the map's pixels above the map's mean.

Where embedstore departs, and why:
- ``stride``: the authors slide the window one pixel at a time, (242 − 10 + 1)² = 54,289 forward
  passes per image (minutes on a GPU, hours on a CPU). ``stride=1`` is that exact definition;
  a larger stride (at most the mask, so every pixel stays covered) visits every stride-th
  position (always including the last) and divides each pixel's sum by the number of windows
  that covered it, which at stride 1 is size² everywhere in the kept region, so the two agree
  there. A coarser stride gives a blockier map.
- Normalisation uses the backbone's own mean/std (``spec.preprocess``); the authors use the
  ImageNet statistics for every model, which is what ImageNet-normalised backbones use anyway.
- The occluded copies are independent (the authors' first version, ``occlusion_saliency.py``,
  wrote each window into the same tensor, so occlusions accumulated; ``saliency.py`` clones).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embedstore.analyze._images import (
    ImageBackbone,
    load_rgb,
    open_dataset_source,
    resolve_device,
    sample_rows,
)
from embedstore.analyze.records import AnalysisResult, mean_ci
from embedstore.data import ImageTransform, Source
from embedstore.errors import InvalidDataError

__all__ = ["attentive_diffusion", "evaluate_saliency", "occlusion_map", "window_starts"]

MAP_CELLS = 56  # stored maps are block means at this resolution (224 / 4)


@dataclass(frozen=True)
class _Preprocess:
    """The authors' saliency preprocessing: bicubic resize and centre crop to ``size``."""

    resize: int
    crop: int
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    interpolation: str = "bicubic"


def window_starts(extent: int, size: int, stride: int) -> list[int]:
    """Top (or left) edges of the windows: 0, stride, ... and always the last, extent - size."""
    last = extent - size
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def occlusion_map(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    size: int = 10,
    stride: int = 1,
    value: float = 0.0,
    batch_size: int = 64,
    crop: bool = True,
) -> np.ndarray:
    """The occlusion saliency map of one preprocessed image.

    Args:
        model: maps (B, 3, H, W) to (B, dim) features.
        image: (3, H, W) float tensor, already normalised.
        size: side of the square occluding window.
        stride: step between window positions (1 = every position, the authors' definition).
        value: what the window is filled with (0 = the mean colour after normalisation).
        crop: drop the size - 1 border pixels as the authors do.

    Returns:
        array of shape (H - 2(size - 1), W - 2(size - 1)) (or (H, W) without ``crop``), float64:
        per pixel the mean over the windows covering it of ||f - f_o|| / ||f||.
    """
    _, h, w = image.shape
    if size < 1 or size > min(h, w):
        raise InvalidDataError(f"the occluding window must be 1..{min(h, w)} pixels, got {size}")
    if not 1 <= stride <= size:
        raise InvalidDataError(
            f"stride must be 1..{size} (at most the mask, so that every pixel is covered), "
            f"got {stride}"
        )
    with torch.inference_mode():
        orig = model(image.unsqueeze(0))[0].double()
        positions = [
            (i, j) for i in window_starts(h, size, stride) for j in window_starts(w, size, stride)
        ]
        scores = torch.zeros((h, w), dtype=torch.float64)
        counts = torch.zeros((h, w), dtype=torch.float64)
        norm = torch.linalg.vector_norm(orig)
        for start in range(0, len(positions), batch_size):
            batch = positions[start : start + batch_size]
            x = image.unsqueeze(0).repeat(len(batch), 1, 1, 1)
            for b, (i, j) in enumerate(batch):
                x[b, :, i : i + size, j : j + size] = value
            feats = model(x).double()
            rrse = (torch.linalg.vector_norm(feats - orig, dim=1) / norm).cpu()  # (B,)
            for b, (i, j) in enumerate(batch):
                scores[i : i + size, j : j + size] += rrse[b]
                counts[i : i + size, j : j + size] += 1
    out = (scores / counts.clamp_min(1)).numpy()
    if crop and size > 1:
        out = out[size - 1 : h - size + 1, size - 1 : w - size + 1]
    return out


def attentive_diffusion(saliency: np.ndarray) -> float:
    """Percentage of the map's pixels above the map's mean (the authors' ``saliency.py``)."""
    m = np.asarray(saliency, dtype=np.float64)
    return float(100.0 * np.count_nonzero(m > m.mean()) / m.size)


def _block_mean(m: np.ndarray, cells: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(m))[None, None]
    return torch.nn.functional.adaptive_avg_pool2d(
        t, (min(cells, m.shape[0]), min(cells, m.shape[1]))
    )[0, 0].numpy()


def saliency_settings(
    size: int, image_size: int, stride: int, n_images: int, seed: int
) -> dict[str, Any]:
    return {"image_size": int(image_size), "mask": int(size), "stride": int(stride),
            "n_images": int(n_images), "seed": int(seed), "fill": 0.0}  # fmt: skip


def saliency_transform(bb: ImageBackbone, image_size: int) -> ImageTransform:
    pre = bb.loaded.spec.preprocess
    return ImageTransform(_Preprocess(image_size, image_size, pre.mean, pre.std))


def evaluate_saliency(
    store: Any,
    dataset: str,
    backbones: Sequence[str],
    *,
    source: str | Source | None = None,
    n_images: int = 16,
    image_size: int = 242,
    size: int = 10,
    stride: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
    weights: dict[str, str] | None = None,
    done: Sequence[AnalysisResult] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> Iterator[AnalysisResult]:
    """Yield a ``saliency_image`` record per (backbone, image) — its attentive diffusion and its
    map (block means, at most 56×56) — then a ``saliency`` record per backbone: the mean
    attentive diffusion over the images ± 1.96·σ/√n. Records in ``done`` are not recomputed.
    """
    names = list(backbones)
    if not names:
        raise InvalidDataError("no backbone given; pass at least one (--backbone NAME)")
    if image_size < size or size < 1:
        raise InvalidDataError(f"need 1 <= mask ({size}) <= image size ({image_size})")
    if not 1 <= stride <= size:
        raise InvalidDataError(
            f"stride must be 1..{size} (at most the mask, so that every pixel is covered), "
            f"got {stride}"
        )
    if batch_size < 1:
        raise InvalidDataError(f"batch size must be >= 1, got {batch_size}")
    settings = saliency_settings(size, image_size, stride, n_images, seed)
    previous = {r.key(): r for r in done}
    dev = resolve_device(device)
    for name in names:
        store.array_info(dataset, name)
    opened: tuple[Source, np.ndarray] | None = None  # the images, opened on first need
    for name in names:
        rows = sample_rows(store.valid_rows(dataset, name), n_images, seed)
        ids = store.ids(dataset)
        summary_key = AnalysisResult("saliency", dataset, (name,), "", {}, settings, 0).key()
        per_image: list[AnalysisResult] = []
        bb = None
        for k, row in enumerate(rows):
            key = AnalysisResult(
                "saliency_image", dataset, (name,), str(ids[row]), {}, settings, 1
            ).key()
            if key in previous:
                per_image.append(previous[key])
                yield previous[key]
                continue
            if bb is None:
                if opened is None:
                    opened = open_dataset_source(store, dataset, source)
                src, src_index = opened
                bb = ImageBackbone.open(
                    store, dataset, name, weights=(weights or {}).get(name), device=dev
                )
                bb.check_against_store(store, dataset, src, rows, src_index)
                transform = saliency_transform(bb, image_size)
            t0 = time.perf_counter()
            image = transform(load_rgb(src, int(src_index[row]))).to(dev)
            m = occlusion_map(
                bb.loaded.model, image, size=size, stride=stride, batch_size=batch_size
            )
            rec = AnalysisResult(
                analysis="saliency_image",
                dataset=dataset,
                features=(name,),
                setting=str(ids[row]),
                metrics={"attentive_diffusion": {"value": attentive_diffusion(m), "ci_low": None, "ci_high": None}},
                settings=settings,
                n=1,
                provenance={name: bb.provenance},
                extra={"row": int(row), "map_shape": list(m.shape),
                       "map": np.round(_block_mean(m, MAP_CELLS), 6).tolist(),
                       "seconds": round(time.perf_counter() - t0, 3)},
            )  # fmt: skip
            per_image.append(rec)
            yield rec
            if progress is not None:
                progress(k + 1, len(rows), f"{name}: image {k + 1}/{len(rows)}")
        if summary_key in previous:
            yield previous[summary_key]
            continue
        values = [r.metrics["attentive_diffusion"]["value"] for r in per_image]
        yield AnalysisResult(
            analysis="saliency",
            dataset=dataset,
            features=(name,),
            setting="",
            metrics={"attentive_diffusion": mean_ci(values)},
            settings=settings,
            n=len(values),
            provenance=per_image[0].provenance if per_image else {},
            extra={"per_image": {r.setting: r.metrics["attentive_diffusion"]["value"] for r in per_image},
                   "seconds": round(sum(r.extra.get("seconds", 0.0) for r in per_image), 3)},
        )  # fmt: skip


def example_images(
    store: Any,
    dataset: str,
    records: Sequence[AnalysisResult],
    *,
    source: str | Source | None,
    image_size: int,
) -> list[np.ndarray]:
    """The images of ``records`` as the saliency maps saw them (resized, centre crop without the
    border), uint8 (h, w, 3), for figures."""
    from torchvision.transforms import functional as F

    src, src_index = open_dataset_source(store, dataset, source)
    out = []
    for r in records:
        img = load_rgb(src, int(src_index[r.extra["row"]]))
        img = F.center_crop(
            F.resize(img, image_size, interpolation=F.InterpolationMode.BICUBIC), [image_size]
        )
        h, w = r.extra["map_shape"]
        out.append(np.asarray(F.center_crop(img, [h, w])))
    return out

"""Figures of the analyses: the CKA heatmap, invariance bars, and the saliency grid.

matplotlib is an optional extra (``pip install 'embedstore[plot]'``), imported only when a figure
is drawn and without pyplot, so drawing changes no global matplotlib state (as ``embedstore.results.figures``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError, MissingDependencyError

__all__ = ["plot_similarity", "plot_invariance", "plot_saliency"]


def _figure(width: float, height: float, dpi: int):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "plotting needs matplotlib, which is not installed; "
            "install it with: pip install 'embedstore[plot]'"
        ) from None
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_similarity(matrix: Any, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Two heatmaps side by side, linear CKA and debiased CKA, values written in the cells."""
    names = list(matrix.backbones)
    k = len(names)
    side = max(3.2, 0.7 * k + 2.0)
    fig = _figure(2 * side + 0.8, side, dpi)
    axes = fig.subplots(1, 2)
    for ax, values, title in (
        (axes[0], matrix.cka, "linear CKA"),
        (axes[1], matrix.cka_debiased, "debiased CKA"),
    ):
        im = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize="small")
        ax.set_yticks(range(k), names, fontsize="small")
        for i in range(k):
            for j in range(k):
                v = values[i, j]
                text = "—" if not np.isfinite(v) else f"{v:.2f}"
                colour = "black" if np.isfinite(v) and v > 0.6 else "white"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize="small")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{matrix.dataset} ({matrix.split} split, n={matrix.n})")
    return _save(fig, path)


def plot_invariance(
    results: Sequence[Any], path: str | os.PathLike[str], *, dpi: int = 120
) -> Path:
    """Grouped bars: mean whitened cosine similarity per transformation, one bar per backbone,
    with the 95% interval as an error bar; hatched where most views equalled their image."""
    rows = [
        r
        for r in results
        if r.analysis == "invariance" and r.metrics["cosine"]["value"] is not None
    ]
    if not rows:
        raise InvalidDataError("nothing to plot: no invariance results")
    names = list(dict.fromkeys(r.feature_name for r in rows))
    transforms = list(dict.fromkeys(r.setting for r in rows))
    by_key = {(r.feature_name, r.setting): r.metrics["cosine"] for r in rows}
    identical = {
        (r.feature_name, r.setting): r.extra.get("identical_views", 0.0) >= 0.5 for r in rows
    }
    fig = _figure(min(11.0, max(5.0, 0.35 * len(transforms) * len(names) + 2.0)), 3.6, dpi)
    ax = fig.subplots()
    width = 0.8 / len(names)
    x = np.arange(len(transforms))
    for b, name in enumerate(names):
        vals, errs = [], []
        for t in transforms:
            m = by_key.get((name, t))
            if m is None:
                vals.append(np.nan)
                errs.append(0.0)
                continue
            lo = m.get("ci_low")
            vals.append(m["value"])
            errs.append(0.0 if lo is None else m["value"] - lo)
        bars = ax.bar(x + (b - (len(names) - 1) / 2) * width, vals, width, yerr=errs,
                      label=name, color=f"C{b % 10}", capsize=2)  # fmt: skip
        for bar, t in zip(bars, transforms, strict=True):
            if identical.get((name, t)):  # most views equalled the image: nothing measured
                bar.set_alpha(0.35)
                bar.set_hatch("//")
    ax.set_xticks(x, transforms, rotation=30, ha="right")
    ax.set_ylabel("invariance (whitened cosine)")
    ax.set_ylim(min(0.0, float(np.nanmin([by_key[k]["value"] for k in by_key])) - 0.05), 1.05)
    ax.axhline(1.0, color="grey", linewidth=0.5)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    title = f"invariance on {rows[0].dataset}"
    if any(identical.values()):
        title += " (hatched: most views equalled their image, nothing measured)"
    ax.set_title(title)
    return _save(fig, path)


def plot_saliency(
    images: Sequence[np.ndarray],
    maps: dict[str, Sequence[np.ndarray]],
    path: str | os.PathLike[str],
    *,
    titles: Sequence[str] = (),
    diffusion: dict[str, Sequence[float]] | None = None,
    dpi: int = 120,
) -> Path:
    """A grid: the first row the images, then one row per backbone with each image's occlusion
    map laid over it (jet, alpha 0.6, as the authors' ``saliency.py`` draws its superimposed
    figure), titled with the map's attentive diffusion.

    Args:
        images: (H, W, 3) float in [0, 1] or uint8, the images as the backbone saw them.
        maps: backbone -> one (h, w) map per image (resized to the image for display).
    """
    if not images or not maps:
        raise InvalidDataError("nothing to plot: no saliency maps")
    n, names = len(images), list(maps)
    fig = _figure(1.9 * n + 0.6, 1.9 * (len(names) + 1), dpi)
    axes = fig.subplots(len(names) + 1, n, squeeze=False)
    for j, img in enumerate(images):
        axes[0][j].imshow(img)
        axes[0][j].set_title(titles[j] if j < len(titles) else "", fontsize="x-small")
        for i, name in enumerate(names):
            ax = axes[i + 1][j]
            m = np.asarray(maps[name][j], dtype=np.float64)
            h, w = img.shape[:2]
            ax.imshow(img)
            ax.imshow(m, cmap="jet", alpha=0.6, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
            if diffusion is not None:
                ax.set_title(f"AD {diffusion[name][j]:.1f}%", fontsize="x-small")
            if j == 0:
                ax.set_ylabel(name, fontsize="small")
    for row in axes:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, path)

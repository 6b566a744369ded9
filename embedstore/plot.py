"""Label-efficiency plots: a metric against the number of labels, one curve per feature set.

matplotlib is an optional extra (``pip install 'embedstore[plot]'``); it is imported only when a
plot is drawn, and without pyplot, so drawing changes no global matplotlib state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from embedstore.errors import InvalidDataError, MissingDependencyError
from embedstore.report import ProbeResult
from embedstore.stats import summarize

__all__ = ["plot_sweep"]

_AXIS_LABEL = {"fraction": "labelled fraction of train (%)", "shots": "labelled samples per class"}


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "plotting needs matplotlib, which is not installed; "
            "install it with: pip install 'embedstore[plot]'"
        ) from None
    return Figure, FigureCanvasAgg


def plot_sweep(
    results: Sequence[ProbeResult],
    path: str | os.PathLike[str],
    *,
    metric: str = "accuracy",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Write a PNG of ``metric`` (mean over seeds, band ± 1 std) against labels, log x axis.

    One subplot per method (columns) and per kind of label setting present (rows: fractions,
    shots); one line and band per feature set, in the same colour in every subplot.

    Returns:
        The path written.
    """
    rows = summarize(results, metric=metric)
    if not rows:
        raise InvalidDataError(
            f"nothing to plot: no sweep results with a '{metric}' value "
            "(records need a label fraction or shots and the metric)"
        )
    Figure, FigureCanvasAgg = _matplotlib()
    methods = list(dict.fromkeys(r.method for r in rows))
    kinds = [k for k in ("fraction", "shots") if any(r.setting[0] == k for r in rows)]
    names = list(dict.fromkeys(r.features for r in rows))
    fig = Figure(figsize=(4.2 * len(methods), 3.4 * len(kinds)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(kinds), len(methods), squeeze=False)
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    for i, kind in enumerate(kinds):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            for name in names:
                pts = sorted(
                    (r.setting[1], r.mean, r.std)
                    for r in rows
                    if r.method == method and r.setting[0] == kind and r.features == name
                )
                if not pts:
                    continue
                scale_x = 100.0 if kind == "fraction" else 1.0
                x = [p[0] * scale_x for p in pts]
                mean = [p[1] * 100 for p in pts]
                lo = [(p[1] - p[2]) * 100 for p in pts]
                hi = [(p[1] + p[2]) * 100 for p in pts]
                ax.plot(x, mean, marker="o", color=colours[name], label=name)
                ax.fill_between(x, lo, hi, color=colours[name], alpha=0.2, linewidth=0)
            ax.set_xscale("log")
            ax.set_xlabel(_AXIS_LABEL[kind])
            ax.set_ylabel(f"{metric} (%)")
            ax.set_title(method)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out

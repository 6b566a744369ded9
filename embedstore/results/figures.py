"""Label-efficiency plots: a metric against the number of labels, one curve per feature set.

matplotlib is an optional extra (``pip install 'embedstore[plot]'``); it is imported only when a
plot is drawn, and without pyplot, so drawing changes no global matplotlib state.

The figure is meant to go into a paper as it is: x ticks at exactly the settings that were run,
one y axis shared by every panel (so panels compare at a glance), the legend outside the data,
and the legend saying what the line and the band are (mean and ±1 s.d. over N seeds) and which
points are one measurement (every seed drew the same labelled subset, e.g. 100% of the labels).
The file type follows the suffix: .png at 300 dpi, .pdf and .svg as vector graphics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from embedstore.errors import InvalidDataError, MissingDependencyError
from embedstore.results.records import ProbeResult
from embedstore.results.seeds import summarize

__all__ = ["FORMATS", "plot_sweep", "sweep_figure"]

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_AXIS_LABEL = {"fraction": "labelled fraction of train", "shots": "labelled samples per class"}
_METRIC_LABEL = {
    "accuracy": "accuracy (%)",
    "balanced_accuracy": "balanced accuracy (%)",
    "macro_f1": "macro-F1 (%)",
    "auc": "ROC-AUC (%)",
    "kappa": "quadratic-weighted kappa",
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
_POINT = {"markersize": 4.5, "markeredgewidth": 1.1, "linestyle": "none"}


def _matplotlib():
    try:
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        raise MissingDependencyError(
            "plotting needs matplotlib, which is not installed; "
            "install it with: pip install 'embedstore[plot]'"
        ) from None
    return Figure, Line2D, Patch


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidDataError(
            f"plot file '{path}' has an unknown type; give a name ending in "
            f"{', '.join(FORMATS)} (.pdf and .svg are vector graphics)"
        )
    return fmt


def _span(values: Sequence[int]) -> str:
    """[3] -> '3'; [55, 56, 57] -> '55–57'."""
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def _tick_label(kind: str, x: float) -> str:
    if kind == "fraction":
        return f"{x:.3g}%"
    return f"{x:g}"


def _one_subset_cells(results: Sequence[ProbeResult]) -> set[tuple[str, str, tuple]]:
    """(features, method, setting) cells whose seeds all drew the same labelled subset."""
    from embedstore.data.subsets import setting_key

    digests: dict[tuple[str, str, tuple], set] = {}
    seeds: dict[tuple[str, str, tuple], set] = {}
    for r in results:
        setting = setting_key(r.labels)
        if setting is None:
            continue
        key = (r.feature_name, r.method, setting)
        digests.setdefault(key, set()).add(r.labels.get("subset_digest"))
        seeds.setdefault(key, set()).add(r.seed)
    return {k for k, d in digests.items() if len(seeds[k]) > 1 and len(d) == 1 and None not in d}


def plot_sweep(
    results: Sequence[ProbeResult],
    path: str | os.PathLike[str],
    *,
    metric: str = "accuracy",
    title: str | None = None,
    dpi: int = 300,
) -> Path:
    """Write :func:`sweep_figure` to ``path``; the type follows its suffix (see ``FORMATS``).

    Returns:
        The path written.
    """
    out = Path(path)
    fmt = _format(out)
    fig = sweep_figure(results, metric=metric, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=fmt, dpi=dpi)
    return out


def sweep_figure(
    results: Sequence[ProbeResult], *, metric: str = "accuracy", title: str | None = None
):
    """A matplotlib Figure of ``metric`` (mean over seeds, band ±1 s.d.) against labels, log x.

    One panel per method (columns) and per kind of label setting present (rows: fractions,
    shots), all sharing one y axis; one line, marker and band per feature set, in the same colour
    in every panel; the legend outside the panels, on the right.
    """
    results = list(results)
    rows = summarize(results, metric=metric)
    if not rows:
        raise InvalidDataError(
            f"nothing to plot: no sweep results with a '{metric}' value "
            "(records need a label fraction or shots and the metric)"
        )
    Figure, Line2D, Patch = _matplotlib()
    scale_y = 1.0 if metric == "kappa" else 100.0
    methods = list(dict.fromkeys(r.method for r in rows))
    kinds = [k for k in ("fraction", "shots") if any(r.setting[0] == k for r in rows)]
    names = list(dict.fromkeys(r.features for r in rows))
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    markers = {n: _MARKERS[i % len(_MARKERS)] for i, n in enumerate(names)}
    single = _one_subset_cells(results)
    n_seeds = sorted({r.n_seeds for r in rows})
    n_test = sorted({r.n_test for r in results if r.n_test})

    fig = Figure(figsize=(2.9 * len(methods) + 2.6, 2.6 * len(kinds) + 0.5), layout="constrained")
    axes = fig.subplots(len(kinds), len(methods), squeeze=False, sharey=True)
    for i, kind in enumerate(kinds):
        scale_x = 100.0 if kind == "fraction" else 1.0
        ticks = sorted({r.setting[1] * scale_x for r in rows if r.setting[0] == kind})
        for j, method in enumerate(methods):
            ax = axes[i][j]
            for name in names:
                cells = sorted(
                    (r.setting, r.mean, r.std)
                    for r in rows
                    if r.method == method and r.setting[0] == kind and r.features == name
                )
                if not cells:
                    continue
                x = [s[1] * scale_x for s, _, _ in cells]
                mean = [m * scale_y for _, m, _ in cells]
                lo = [(m - sd) * scale_y for _, m, sd in cells]
                hi = [(m + sd) * scale_y for _, m, sd in cells]
                c, mk = colours[name], markers[name]
                ax.fill_between(x, lo, hi, color=c, alpha=0.18, linewidth=0)
                ax.plot(x, mean, color=c, linewidth=1.4)
                for (setting, _, _), xi, yi in zip(cells, x, mean, strict=True):
                    hollow = (name, method, setting) in single
                    face = "white" if hollow else c
                    ax.plot([xi], [yi], marker=mk, color=c, markerfacecolor=face, **_POINT)
            ax.set_xscale("log")
            ax.set_xticks(ticks, labels=[_tick_label(kind, t) for t in ticks])
            ax.minorticks_off()
            if len(ticks) > 1:
                ax.set_xlim(ticks[0] / 1.35, ticks[-1] * 1.35)
            # Many settings on a log axis (1 … 1000 per class) crowd their labels: slant them.
            ax.tick_params(axis="x", labelsize="small", labelrotation=45 if len(ticks) > 6 else 0)
            ax.set_xlabel(_AXIS_LABEL[kind], fontsize="small")
            ax.set_title(method, fontsize="medium")
            ax.grid(True, axis="y", alpha=0.3, linewidth=0.6)
            ax.grid(True, axis="x", alpha=0.15, linewidth=0.6)
            if j == 0:
                ax.set_ylabel(_METRIC_LABEL.get(metric, metric))

    handles = [
        Line2D([], [], color=colours[n], marker=markers[n], markersize=4.5, label=n) for n in names
    ]
    band = f"±1 s.d. over {_span(n_seeds)} seeds"
    handles.append(Patch(color="0.6", alpha=0.35, label=band))
    if single:
        label = "same labelled subset\nfor every seed (no spread)"
        hollow = Line2D([], [], color="0.3", marker="o", markerfacecolor="white", **_POINT)
        hollow.set_label(label)
        handles.append(hollow)
    legend_title = "mean over seeds" + (f"; test n = {_span(n_test)}" if n_test else "")
    fig.legend(
        handles=handles,
        loc="outside right upper",
        fontsize="small",
        title=legend_title,
        title_fontsize="small",
        frameon=False,
    )
    if title:
        fig.suptitle(title)
    return fig

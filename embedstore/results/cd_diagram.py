"""The critical-difference diagram of Demšar (2006): average ranks on one axis, the Nemenyi
critical difference as a bar above it, and thick lines joining feature sets whose average ranks
are closer than CD (not significantly different at the ranking's alpha).

Rank 1 (best) is on the left; the better half of the feature sets is labelled on the left, the
rest on the right. Where Friedman/Nemenyi could not be tested (too few datasets), the ranks are
drawn without a CD bar and the figure says why. matplotlib is imported only when drawing, and
without pyplot (as :mod:`embedstore.results.figures`).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from embedstore.results.figures import _format, _matplotlib
from embedstore.results.ranking import Ranking

__all__ = ["cd_figure", "cliques", "figure_svg", "plot_cd"]


def cliques(ranking: Ranking) -> list[tuple[str, ...]]:
    """Maximal runs of feature sets (in rank order) whose average ranks span less than CD."""
    if ranking.cd is None:
        return []
    names = ranking.features
    r = [ranking.mean_rank[n] for n in names]
    spans: list[tuple[int, int]] = []
    for i in range(len(names)):
        j = i
        while j + 1 < len(names) and r[j + 1] - r[i] < ranking.cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in spans):
            spans.append((i, j))
    return [tuple(names[i : j + 1]) for i, j in spans]


def cd_figure(ranking: Ranking, *, title: str | None = None):
    """A matplotlib Figure of the ranking's critical-difference diagram."""
    Figure, _, _ = _matplotlib()
    names = ranking.features
    k = len(names)
    half = (k + 1) // 2
    height = 1.3 + 0.28 * max(half, k - half)
    fig = Figure(figsize=(6.4, height))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    ax.set_axis_off()
    lo, hi = 1, max(k, 2)
    top = 0.0
    ax.set_xlim(lo - 1.6, hi + 1.6)
    ax.set_ylim(-(max(half, k - half) + 1.5) * 0.3, 0.95)  # the title sits top left
    ax.plot([lo, hi], [top, top], color="black", linewidth=1)
    for t in range(lo, hi + 1):
        ax.plot([t, t], [top, top + 0.06], color="black", linewidth=1)
        ax.text(t, top + 0.1, str(t), ha="center", va="bottom", fontsize=9)
    ax.text((lo + hi) / 2, top + 0.32, "average rank (1 = best)", ha="center", fontsize=8)
    if ranking.cd is not None:
        ax.plot([lo, lo + ranking.cd], [0.7, 0.7], color="black", linewidth=1.5)
        for x in (lo, lo + ranking.cd):
            ax.plot([x, x], [0.66, 0.74], color="black", linewidth=1.5)
        ax.text(lo + ranking.cd / 2, 0.76, f"CD = {ranking.cd:.2f}", ha="center", fontsize=8)
    else:
        ax.text(hi, 0.7, "no CD: too few datasets for Friedman/Nemenyi", ha="right", fontsize=8)
    step = 0.3
    for i, n in enumerate(names):
        r = ranking.mean_rank[n]
        left = i < half
        row = i if left else k - 1 - i
        y = -(row + 1) * step
        x_text = lo - 0.15 if left else hi + 0.15
        ax.plot([r, r, x_text], [top, y, y], color="0.25", linewidth=0.9)
        ax.text(x_text + (-0.05 if left else 0.05), y, f"{n} ({r:.2f})",
                ha="right" if left else "left", va="center", fontsize=8)  # fmt: skip
    for m, group in enumerate(cliques(ranking)):
        xs = [ranking.mean_rank[n] for n in group]
        y = -0.1 - 0.07 * m
        ax.plot([min(xs) - 0.03, max(xs) + 0.03], [y, y], color="black", linewidth=3.5,
                solid_capstyle="round")  # fmt: skip
    if title:
        ax.text(lo - 1.5, 0.93, title, ha="left", va="top", fontsize=9, fontweight="bold")
    return fig


def plot_cd(ranking: Ranking, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write the diagram to ``path`` (.svg, .pdf or .png by suffix)."""
    out = Path(path)
    fmt = _format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cd_figure(ranking, title=title).savefig(out, format=fmt, dpi=300)
    return out


def figure_svg(fig) -> str:
    """A Figure as inline SVG text for the HTML report: no XML header, no RDF metadata block
    (its namespace URLs are names, never fetched, but a page with no URL at all is easier to
    check as offline)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg") :], flags=re.S)

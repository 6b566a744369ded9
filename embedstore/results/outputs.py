"""Files of a study report from results files: the HTML page, the study table as LaTeX or
Markdown, and the figures (critical-difference diagrams, label-efficiency curves) as PDF and SVG.

The one function ``embedstore report --html/--latex/--markdown/--figures`` calls. Everything is
checked (files exist, suffixes, named pairs) before anything is computed or written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from embedstore.errors import InvalidDataError
from embedstore.results.records import ProbeResult, check_metric, read_jsonl

__all__ = ["check_html_path", "load_results", "parse_pairs", "write_report_files"]


def parse_pairs(texts: Sequence[str]) -> list[tuple[str, str]]:
    """['dino:swav', 'dino+swav:dino'] -> [('dino', 'swav'), ('dino+swav', 'dino')]."""
    out = []
    for t in texts:
        a, sep, b = t.partition(":")
        if not sep or not a or not b or ":" in b:
            raise InvalidDataError(
                f"a pair to compare is two feature sets joined by ':', e.g. dino:swav; got '{t}'"
            )
        out.append((a, b))
    return out


def check_html_path(path: str | os.PathLike[str]) -> None:
    """Raise unless ``path`` names an .html (or .htm) file."""
    if Path(path).suffix.lower() not in (".html", ".htm"):
        raise InvalidDataError(f"--html needs a file name ending in .html; got '{path}'")


def load_results(
    paths: Sequence[str | os.PathLike[str]],
    *,
    predictions: str | os.PathLike[str] | None = None,
) -> tuple[list[ProbeResult], dict]:
    """Records of every results file, and the per-image predictions saved beside them.

    Args:
        predictions: a predictions folder; default: each results file's own
            (:func:`~embedstore.results.predictions.predictions_folder`), where it exists.
    """
    from embedstore.results.predictions import predictions_folder, read_predictions

    records: list[ProbeResult] = []
    for p in paths:
        if not Path(p).is_file():
            raise InvalidDataError(
                f"results file '{p}' does not exist; pass a file written by "
                "`embedstore probe/sweep/study --out FILE`"
            )
    if predictions is not None and not Path(predictions).is_dir():
        raise InvalidDataError(
            f"predictions folder '{predictions}' does not exist; pass the folder written by "
            "--predictions (beside the results file), or leave the option out"
        )
    folders = [Path(predictions)] if predictions is not None else [
        predictions_folder(p) for p in paths]  # fmt: skip
    preds: dict = {}
    for p in paths:
        records += read_jsonl(p)
    for f in folders:
        preds.update(read_predictions(f))
    return records, preds


def write_report_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    html: str | os.PathLike[str] | None = None,
    latex: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
    figures: str | os.PathLike[str] | None = None,
    predictions: str | os.PathLike[str] | None = None,
    metric: str = "accuracy",
    pairs: Sequence[str] = (),
    records: Sequence[ProbeResult] | None = None,
) -> list[Path]:
    """Write the files asked for; returns their paths.

    Args:
        figures: a folder for ``cd_<method>_<setting>.{pdf,svg}`` and
            ``curves_<dataset>.{pdf,svg}``.
        pairs: 'a:b' feature-set pairs to compare besides every one against the best.
        records: the records to report (default: all of ``paths``; pass a filtered list).
    """
    named = parse_pairs(pairs)
    if html is not None:
        check_html_path(html)
    loaded, preds = load_results(paths, predictions=predictions)
    records = loaded if records is None else list(records)
    if not records:
        raise InvalidDataError(f"no result records in {', '.join(map(str, paths))}")
    check_metric(records, metric)
    written = []
    if html is not None:
        from embedstore.results.html import build_html

        out = Path(html)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            build_html(records, predictions=preds, metric=metric, pairs=named,
                       sources=[str(p) for p in paths]),
            encoding="utf-8",
        )  # fmt: skip
        written.append(out)
    if latex is not None or markdown is not None:
        from embedstore.results.study_table import render_study, study_tables

        tables = study_tables(records, metric=metric)
        for path, fmt in ((latex, "latex"), (markdown, "markdown")):
            if path is not None:
                out = Path(path)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(render_study(tables, fmt), encoding="utf-8")
                written.append(out)
    if figures is not None:
        written += _figures(records, Path(figures), metric)
    return written


def _slug(text: str) -> str:
    text = text.replace("%", "pct")
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def _figures(records: Sequence[ProbeResult], folder: Path, metric: str) -> list[Path]:
    from embedstore.data.subsets import setting_key
    from embedstore.results.cd_diagram import cd_figure
    from embedstore.results.figures import sweep_figure
    from embedstore.results.ranking import rank_feature_sets
    from embedstore.results.study_table import study_tables
    from embedstore.results.tables import setting_label

    folder.mkdir(parents=True, exist_ok=True)
    figs = []
    for t in study_tables(records, metric=metric):
        label = f"{t.method} at {setting_label(t.setting)}"
        name = f"cd_{_slug(t.method)}_{_slug(setting_label(t.setting))}"
        ranking = rank_feature_sets(t)
        if len(ranking.datasets) >= 2:  # one dataset: no ranks across datasets to draw
            figs.append((name, cd_figure(ranking, title=label)))
    for d in dict.fromkeys(r.dataset for r in records):
        rs = [r for r in records if r.dataset == d and setting_key(r.labels) is not None]
        if len({setting_key(r.labels) for r in rs}) >= 2:
            figs.append((f"curves_{_slug(d)}", sweep_figure(rs, metric=metric, title=d)))
    out = []
    for name, fig in figs:
        for suffix in ("pdf", "svg"):
            path = folder / f"{name}.{suffix}"
            fig.savefig(path, format=suffix)
            out.append(path)
    return out

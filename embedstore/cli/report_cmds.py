"""`embedstore report`: result records (JSON lines from probe / sweep --out) as paper tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from embedstore.cli._common import check_choice, computed_only, console, err_console, user_errors

# File suffix -> table format, for --out without --format.
_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".tex": "latex", ".csv": "csv"}


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    results: Annotated[
        list[str], typer.Argument(help="Results files (JSON lines from probe/sweep --out).")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table (the terminal), markdown, latex (booktabs) or csv; default: from --out's "
            "suffix, else table.",
        ),
    ] = None,
    metric: Annotated[
        str,
        typer.Option(help="accuracy, balanced_accuracy, macro_f1, auc, or kappa (ordinal tasks)."),
    ] = "accuracy",
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", "-d", help="Only this dataset (repeatable).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="Only this method (repeatable).")
    ] = None,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Write the tables here instead of stdout.")
    ] = None,
    html: Annotated[
        str | None,
        typer.Option(
            help="Write one self-contained HTML report here (study table, ranks and CD diagram, "
            "curves, paired tests, caveats, provenance; opens offline)."
        ),
    ] = None,
    latex: Annotated[
        str | None, typer.Option(help="Write the study table (backbones × datasets) as LaTeX.")
    ] = None,
    markdown: Annotated[
        str | None, typer.Option(help="Write the study table (backbones × datasets) as Markdown.")
    ] = None,
    figures: Annotated[
        str | None,
        typer.Option(help="Write the CD diagrams and label-efficiency curves (PDF and SVG) here."),
    ] = None,
    predictions: Annotated[
        str | None,
        typer.Option(
            help="Per-image predictions folder for paired tests; default: the one beside each "
            "results file (runs/a.jsonl -> runs/a.predictions/), where it exists."
        ),
    ] = None,
    study: Annotated[
        bool,
        typer.Option(
            "--study",
            help="The study table instead (feature sets × datasets per method and setting, "
            "with ranks and the Friedman test on the terminal); --format/--out apply to it.",
        ),
    ] = False,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare", help="A pair to test besides all against the best, e.g. dino:swav."
        ),
    ] = None,
) -> None:
    """Tables for a paper from result records: mean ± spread per feature set × setting, n shown.

    With --html, --latex, --markdown or --figures: the study report across datasets instead.
    """
    from embedstore.errors import InvalidDataError
    from embedstore.results.records import METRICS, check_metric, read_jsonl
    from embedstore.results.table_formats import FORMATS, render
    from embedstore.results.tables import build_tables

    with user_errors():
        check_choice(metric, METRICS, "--metric")
        if fmt is None:
            fmt = _SUFFIX.get(Path(out).suffix.lower(), "markdown") if out else "table"
        check_choice(fmt, ["table", *FORMATS] if not out else FORMATS, "--format")
        records = []
        for path in results:
            if not Path(path).is_file():
                raise InvalidDataError(
                    f"results file '{path}' does not exist; pass a file written by "
                    "`embedstore probe/sweep --out FILE`"
                )
            records += read_jsonl(path)
        records = computed_only(records)
        if dataset:
            records = [r for r in records if r.dataset in dataset]
        if method:
            records = [r for r in records if r.method in method]
        if not records:
            raise InvalidDataError(
                f"no result records in {', '.join(results)}"
                + (" for the --dataset/--method given" if dataset or method else "")
            )
        check_metric(records, metric)
        if html or latex or markdown or figures:
            from embedstore.results.outputs import write_report_files

            written = write_report_files(
                results, html=html, latex=latex, markdown=markdown, figures=figures,
                predictions=predictions, metric=metric, pairs=compare or (), records=records,
            )  # fmt: skip
            for out_path in written:
                err_console.print(f"wrote {out_path}", highlight=False)
            return
        if study:
            from embedstore.results.study_table import render_study, study_tables

            s_tables = study_tables(records, metric=metric)
            if fmt == "table":
                render_study_tables(s_tables)
                return
            text = render_study(s_tables, fmt)
        else:
            tables = build_tables(records, metric=metric)
            if fmt == "table":
                render_tables(tables)
                return
            text = render(tables, fmt)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        err_console.print(f"wrote {out} ({fmt}, {len(records)} records)", highlight=False)
    else:
        console.print(text, end="", markup=False, highlight=False, soft_wrap=True)


def render_study_tables(tables) -> None:
    """Study tables (:func:`embedstore.results.study_table.study_tables`) on the terminal, each
    with its ranks and tests across datasets."""
    from embedstore.results.ranking import rank_feature_sets
    from embedstore.results.study_table import cell_text

    for t in tables:
        table = Table(title=t.caption(), title_justify="left")
        table.add_column("features")
        for d in t.datasets:
            table.add_column(d, justify="right")
        table.add_column("avg rank", justify="right")
        rk = rank_feature_sets(t)
        for f in t.features:
            row = [f]
            for d in t.datasets:
                c = t.cells.get((f, d))
                text, marks = cell_text(c, t.scale)
                row.append((f"[bold]{text}[/]" if c is not None and c.best else text) + marks)
            row.append(f"{rk.mean_rank[f]:.2f}" if rk.datasets else "—")
            table.add_row(*row)
        table.add_row("test n", *[t.n_test[d] for d in t.datasets], "", end_section=True)
        console.print(table)
        lines = list(t.footnotes())
        if rk.friedman_p is not None:
            lines.append(
                f"Friedman chi² = {rk.friedman_stat:.3f}, p = {rk.friedman_p:.3g}; Nemenyi CD = "
                f"{rk.cd:.2f} (average ranks further apart differ at alpha {rk.alpha})"
            )
        for note in lines + rk.notes:
            console.print(f"  {note}", highlight=False, markup=False, soft_wrap=True)


def render_tables(tables) -> None:
    """Result tables (:func:`embedstore.results.tables.build_tables`) on the terminal, with footnotes."""
    from embedstore.results.table_formats import (
        caption,
        footnotes,
        format_cell,
        n_labelled_text,
        test_n_text,
    )
    from embedstore.results.tables import column_label

    for t in tables:
        table = Table(title=caption(t), title_justify="left")
        table.add_column("features")
        table.add_column("test n", justify="right")
        for s in t.settings:
            table.add_column(f"{column_label(t, s)}\nn={n_labelled_text(t, s)}", justify="right")
        for f in t.features:
            row = [f, test_n_text(t, f)]
            for s in t.settings:
                c = t.cells.get((f, s))
                text, marks = format_cell(c, t)
                row.append((f"[bold]{text}[/]" if c is not None and c.best else text) + marks)
            table.add_row(*row)
        console.print(table)
        for note in footnotes(t):
            console.print(f"  {note}", highlight=False, markup=False, soft_wrap=True)
    if tables:
        console.print("bold: best mean in its column", highlight=False)


def render_paired(records, folder) -> None:
    """Paired tests on the same test images from the predictions saved in ``folder``: the best
    feature set against each other one per (dataset, method, labels, seed)."""
    from pathlib import Path

    from rich.table import Table

    from embedstore.results.paired import compare_records
    from embedstore.results.predictions import read_predictions
    from embedstore.results.tables import setting_label

    if folder is None or not Path(folder).is_dir():
        return
    comparisons = compare_records(records, read_predictions(folder))
    if not comparisons:
        return
    table = Table(title="paired on the same test images (points; best − other)")
    for col in ("test split", "a − b", "accuracy diff (95% CI)", "AUC diff (95% CI)",
                "DeLong p", "McNemar p", "unit"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("test split", "a − b") else "right")

    def diff(d) -> str:
        if d is None or d.diff is None:
            return "—"
        ci = "" if d.ci_low is None else f" ({d.ci_low * 100:+.1f} to {d.ci_high * 100:+.1f})"
        return f"{d.diff * 100:+.1f}{ci}"

    for (dataset, method, setting, seed), c in comparisons:
        table.add_row(
            f"{dataset} / {method} / {setting_label(setting)} / seed {seed}",
            f"{c.a} − {c.b}",
            diff(c.metrics.get("accuracy")),
            diff(c.metrics.get("auc")),
            "—" if c.delong is None else f"{c.delong.p_value:.3g}",
            "—" if c.mcnemar is None else f"{c.mcnemar.p_value:.3g}",
            f"{c.unit} ({c.n_units})",
        )
    console.print(table)
    console.print(
        "CI: paired percentile bootstrap over the unit; DeLong (binary AUC) and McNemar's exact "
        "test (accuracy) treat images as independent. See docs/reading-the-numbers.md.",
        highlight=False,
    )

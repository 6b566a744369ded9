"""`embedstore study`: run and inspect a study file (many datasets × feature sets × protocols)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from embedstore.cli._common import (
    PredictionsOpt,
    console,
    err_console,
    not_computed_line,
    user_errors,
)

study_app = typer.Typer(
    help="Studies: many datasets × backbones × protocols as one resumable plan.",
    no_args_is_help=True,
)

StudyArg = Annotated[str, typer.Argument(help="The study file (TOML; see docs/studies.md).")]
WorkersOpt = Annotated[
    int,
    typer.Option(
        help="Processes to run cells in on this machine; each holds one (dataset, feature set) "
        "at a time, so peak memory is at most N times that of the largest single sweep.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")


@study_app.command("run")
def run(
    study: StudyArg,
    workers: WorkersOpt = 1,
    metric: Annotated[
        str, typer.Option(help="Metric of the summary tables (accuracy, auc, ...).")
    ] = "accuracy",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines, no tables.")] = False,
    predictions: PredictionsOpt = False,
) -> None:
    """Run a study, or resume it: cells already in its results file are not run again.

    Under torchrun (`torchrun --nproc-per-node N $(which embedstore) study run S.toml`, or any
    launcher that sets RANK and WORLD_SIZE) every rank takes a disjoint share of the cells.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from embedstore.engine import run_plan
    from embedstore.results.records import METRICS, check_metric
    from embedstore.study import plan_study, read_study

    with user_errors():
        from embedstore.cli._common import check_choice

        check_choice(metric, METRICS, "--metric")
        if workers < 1:
            from embedstore.errors import InvalidDataError

            raise InvalidDataError(f"--workers must be at least 1; got {workers}")
        spec = read_study(study)
        plan = plan_study(spec)
        skipped: list[tuple[str, str]] = []
        bar = Progress(
            TextColumn(f"[bold]{spec.name}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=err_console,
            transient=True,
            disable=as_json,
        )

        def failed(r) -> None:
            if r.status == "not computed":
                err_console.print(not_computed_line(r), highlight=False, soft_wrap=True)

        with bar:
            task = bar.add_task("checking the plan", total=None)
            results = run_plan(
                plan,
                out=spec.out,
                workers=workers,
                progress=lambda d, t, text: bar.update(
                    task, completed=d, total=t, description=text
                ),
                on_skip=lambda m, why: skipped.append((m, why)),
                on_record=failed,
                predictions=predictions,
            )
        computed = [r for r in results if r.computed]
        if computed:
            check_metric(computed, metric)
    if as_json:
        for r in results:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    for m, why in dict.fromkeys(skipped):
        err_console.print(f"[yellow]skipped {m}:[/] {why}", highlight=False, soft_wrap=True)
    from embedstore.cli.report_cmds import render_paired, render_study_tables
    from embedstore.results.study_table import study_tables

    with user_errors():
        render_study_tables(study_tables(computed, metric=metric))
        if predictions:
            from embedstore.results.predictions import predictions_folder

            render_paired(computed, predictions_folder(spec.out))
    for r in results:
        if r.status == "skipped":
            console.print(f"skipped {r.feature_name} on {r.dataset}: {r.reason}", highlight=False)
    err_console.print(f"{len(results)} records in {spec.out}")


@study_app.command("show")
def show(
    study: StudyArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Print a study's plan: cells in all, done, to do, and the time the rest should take."""
    from embedstore.study import study_status

    with user_errors():
        status = study_status(study)
    if as_json:
        typer.echo(json.dumps(status.to_dict()))
        return
    from rich.table import Table

    table = Table(title=f"study {status.name} → {status.out}")
    for col in ("dataset", "cells", "done", "to do"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for ds, c in status.per_dataset.items():
        table.add_row(ds, str(c["total"]), str(c["done"]), str(c["total"] - c["done"]))
    table.add_row("all", str(status.total), str(status.done), str(status.todo), style="bold")
    console.print(table)
    if status.todo == 0:
        left = "nothing left to run"
    elif status.seconds_left is None:
        left = "time left: unknown until a cell has been timed (run the study)"
    else:
        left = f"time left: about {_duration(status.seconds_left)} in one process"
    extra = []
    if status.not_computed:
        extra.append(f"{status.not_computed} not computed")
    if status.skipped:
        extra.append(f"{status.skipped} skipped")
    console.print(left + (f" ({', '.join(extra)})" if extra else ""), highlight=False)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"

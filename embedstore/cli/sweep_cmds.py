"""`embedstore sweep`: label fractions / shots × seeds × feature sets, tables, records and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from embedstore.cli._common import (
    BackboneOpt,
    ClassWeightOpt,
    DatasetOpt,
    DeviceOpt,
    FuseOpt,
    GridOpt,
    NormalizeOpt,
    PredictionsOpt,
    ProtocolOpt,
    StoreArg,
    check_choice,
    computed_only,
    console,
    err_console,
    feature_sets,
    method_help,
    progress_bar,
    user_errors,
)
from embedstore.errors import InvalidDataError
from embedstore.results.records import ProbeResult


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


def sweep(
    store: StoreArg,
    dataset: DatasetOpt,
    backbone: BackboneOpt = None,
    fuse: FuseOpt = None,
    fractions: Annotated[
        str | None, typer.Option(help="Label fractions of train, e.g. 0.01,0.1,1.0.")
    ] = None,
    shots: Annotated[
        str | None, typer.Option(help="Labelled samples per class, e.g. 1,5,10,25,50,100.")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Number of subset seeds (0..n-1).")] = 5,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            "--method",
            "-m",
            help=f"Comma list of {method_help(sweep=True)}, or all [knn,logreg].",
        ),
    ] = None,
    selection: Annotated[
        str | None,
        typer.Option(
            help="How C and k are chosen: train-cv (CV inside the labelled subset, honest at "
            "low labels) or val (the published protocol: the full validation split) [train-cv]."
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Metric for the tables, comparisons and plot: accuracy, balanced_accuracy, "
            "macro_f1, auc, or kappa (ordinal tasks) [accuracy, or the preset's]."
        ),
    ] = None,
    device: DeviceOpt = "auto",
    normalize: NormalizeOpt = "l2",
    grid: GridOpt = "ericsson",
    bootstrap: Annotated[
        int,
        typer.Option(
            help="Bootstrap replicates for per-cell test CIs (0: none; seeds give the spread)."
        ),
    ] = 0,
    cv_seed: Annotated[int, typer.Option(help="Seed of the cross-validation folds.")] = 0,
    out: Annotated[
        str | None,
        typer.Option(help="JSON-lines results file; cells already in it are skipped (resume)."),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(help="Write a figure of metric vs labels here: .png (300 dpi), .pdf or .svg."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines, no table.")] = False,
    protocol: ProtocolOpt = None,
    class_weight: ClassWeightOpt = "none",
    workers: Annotated[
        int,
        typer.Option(
            help="Processes to run cells in; each holds one feature set at a time (memory grows "
            "at most N-fold)."
        ),
    ] = 1,
    predictions: PredictionsOpt = False,
) -> None:
    """Label-efficiency sweep: each backbone and fusion at label fractions or shots, over seeds."""
    from embedstore import open_store
    from embedstore.data.subsets import parse_settings
    from embedstore.devices import resolve_device
    from embedstore.engine.sweep import run_sweep
    from embedstore.probes.options import ProbeOptions
    from embedstore.probes.selection import check_selection
    from embedstore.results.records import METRICS, check_metric
    from embedstore.results.seeds import compare_feature_sets

    with user_errors():
        sets = feature_sets(backbone, fuse)
        preset = None
        if protocol is not None:
            from embedstore.probes.presets import get_protocol

            preset = get_protocol(protocol)
            if class_weight != "none":
                raise InvalidDataError(
                    f"protocol '{protocol}' fixes its class weights; leave out --class-weight"
                )
        metric = metric if metric is not None else (preset.metric if preset else "accuracy")
        settings = parse_settings(fractions, shots) if (fractions or shots or not preset) else []
        if selection is not None:
            check_selection(selection)
        check_choice(class_weight, ("none", "balanced"), "--class-weight")
        if seeds < 1:
            raise InvalidDataError(f"--seeds must be at least 1; got {seeds}")
        check_choice(metric, METRICS, "--metric")
        if plot:
            from embedstore.results.figures import FORMATS

            check_choice(Path(plot).suffix.lower(), FORMATS, "the --plot file's suffix")
        options = ProbeOptions(
            seed=cv_seed,
            device=resolve_device(device),
            normalize=normalize,
            grid=grid,
            n_bootstrap=bootstrap,
            class_weight=None if class_weight == "none" else class_weight,
        )
        s = open_store(store)
        task = s.dataset_info(dataset).task
        if metric == "kappa" and task != "ordinal":
            raise InvalidDataError(
                f"--metric kappa is computed for ordinal tasks; dataset '{dataset}' is {task} "
                f"(use one of {', '.join(m for m in METRICS if m != 'kappa')})"
            )
        bar = progress_bar("sweep", as_json)
        with bar:
            bar_task = bar.add_task("loading features", total=None)

            def progress(done: int, total: int, text: str) -> None:
                bar.update(bar_task, completed=done, total=total, description=text)

            results = run_sweep(
                s,
                dataset,
                sets,
                fractions=[s.value for s in settings if s.kind == "fraction"] or None,
                shots=[int(s.value) for s in settings if s.kind == "shots"] or None,
                seeds=seeds,
                methods=methods,
                selection=selection,
                options=options,
                out=out,
                progress=progress,
                protocol=protocol,
                workers=workers,
                predictions=predictions,
            )
        shown = computed_only(results)
        check_metric(shown, metric)
        comparisons = compare_feature_sets(shown, metric=metric)
        if plot:
            from embedstore.results.figures import plot_sweep

            plot_sweep(shown, plot, metric=metric, title=f"{dataset}: {metric}")
    if as_json:
        for r in results:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    render_summary(shown, metric, title=f"{store} :: {dataset}")
    if preset is not None:
        render_preset(preset, shown)
    render_comparisons(comparisons, metric)
    if predictions and out:
        from embedstore.cli.report_cmds import render_paired
        from embedstore.results.predictions import predictions_folder

        with user_errors():
            render_paired(shown, predictions_folder(out))
    if out:
        err_console.print(f"{len(results)} records in {out}")
    if plot:
        err_console.print(f"wrote {plot}")


def render_summary(results: list[ProbeResult], metric: str, title: str) -> None:
    """One table per method: feature sets × label settings, mean ± s.d. over seeds, n, caveats."""
    from embedstore.cli.report_cmds import render_tables
    from embedstore.results.tables import build_tables

    console.print(title, highlight=False)
    render_tables(build_tables(results, metric=metric))
    selections = sorted({r.selected_on.split(" (")[0] for r in results})
    console.print(f"hyperparameters chosen on: {', '.join(selections)}", highlight=False)


def render_comparisons(comparisons, metric: str) -> None:
    """Paired by seed: mean difference, 95% bootstrap CI, Wilcoxon p, seeds won."""
    from embedstore.results.seeds import format_setting

    if not comparisons:
        return
    table = Table(title=f"paired comparison by seed ({metric}, points)")
    for col in ("method", "labels", "A", "B", "A − B", "95% CI", "Wilcoxon p", "A better"):
        table.add_column(col, justify="right" if col not in ("A", "B", "method") else "left")
    single = [c for c in comparisons if c.n_subsets == 1]
    for c in (c for c in comparisons if c.n_subsets != 1):
        ci = "—" if c.ci_low is None else f"{c.ci_low * 100:+.1f} to {c.ci_high * 100:+.1f}"
        p = "—" if c.p_value is None else f"{c.p_value:.3g}"
        table.add_row(
            c.method,
            format_setting(c.setting),
            c.a,
            c.b,
            f"{c.mean_diff * 100:+.1f}",
            ci,
            p,
            f"{c.wins}/{c.n}",
        )
    if table.row_count:
        console.print(table)
        console.print(
            "A − B: mean over seeds of the paired difference; CI: bootstrap over seeds; "
            "Wilcoxon signed-rank needs ≥ 5 seeds.",
            highlight=False,
        )
    settings = sorted({format_setting(c.setting) for c in single})
    if settings:
        console.print(
            f"not compared at {', '.join(settings)}: every seed drew the same labelled subset "
            "(one measurement each, no replicates to test)",
            highlight=False,
        )


def render_preset(preset, results: list[ProbeResult]) -> None:
    """What the preset fixed, and the settings capped by small classes (listed)."""
    console.print(
        f"protocol {preset.name}: {preset.paper}. "
        + ("Fixed hyper-parameters, no selection. " if preset.selection == "none" else "")
        + f"Headline metric: {preset.metric}.",
        highlight=False,
    )
    capped: dict[str, set[str]] = {}
    for r in results:
        if r.labels.get("capped_classes"):
            key = f"{r.labels.get('shots', r.labels.get('fraction'))}"
            capped.setdefault(key, set()).update(r.labels["capped_classes"])
    for setting, classes in capped.items():
        counts = next(
            r.labels["per_class"]
            for r in results
            if str(r.labels.get("shots", r.labels.get("fraction"))) == setting
        )
        console.print(
            f"capped at {setting} per class: {', '.join(sorted(classes))} have fewer training "
            f"samples (drawn: {counts})",
            highlight=False,
        )

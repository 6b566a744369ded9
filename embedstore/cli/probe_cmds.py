"""`embedstore probe`: evaluate stored embeddings (single backbones and fusions) in seconds."""

from __future__ import annotations

import json
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
    console,
    err_console,
    feature_sets,
    method_help,
    user_errors,
)
from embedstore.results.caveats import SMALL_TEST, describe
from embedstore.results.records import ProbeResult, format_metric


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)


def probe(
    store: StoreArg,
    dataset: DatasetOpt,
    backbone: BackboneOpt = None,
    fuse: FuseOpt = None,
    method: Annotated[
        str,
        typer.Option("--method", "-m", help=f"{method_help()}, a comma list, or all."),
    ] = "all",
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option(help="Seed for episodes, splits and bootstraps.")] = 0,
    normalize: NormalizeOpt = "l2",
    grid: GridOpt = "ericsson",
    k: Annotated[int, typer.Option(help="kNN neighbours.")] = 20,
    shots: Annotated[int, typer.Option(help="Few-shot: support samples per class.")] = 20,
    ways: Annotated[
        int | None,
        typer.Option(
            help="Few-shot: classes per episode (default: 2 for two classes, 5 for five or more, else all)."
        ),
    ] = None,
    n_query: Annotated[
        int, typer.Option("--n-query", help="Few-shot: query samples per class per episode.")
    ] = 15,
    episodes: Annotated[int, typer.Option(help="Few-shot: number of episodes.")] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines, no table.")] = False,
    out: Annotated[
        str | None,
        typer.Option(
            help="JSON-lines results file: one record per result, appended as it finishes; "
            "results already in it are not computed again (resume)."
        ),
    ] = None,
    protocol: ProtocolOpt = None,
    class_weight: ClassWeightOpt = "none",
    predictions: PredictionsOpt = False,
) -> None:
    """Few-shot, nearest-prototype, kNN, logistic and DVME probes on stored embeddings."""
    from embedstore import open_store
    from embedstore.devices import resolve_device
    from embedstore.engine.probe import ProbeOptions, evaluate_probes

    with user_errors():
        sets = feature_sets(backbone, fuse)
        check_choice(class_weight, ("none", "balanced"), "--class-weight")
        options = ProbeOptions(
            seed=seed,
            device=resolve_device(device),
            normalize=normalize,
            grid=grid,
            k=k,
            k_shot=shots,
            n_way=ways,
            n_query=n_query,
            n_episodes=episodes,
            class_weight=None if class_weight == "none" else class_weight,
        )
        s = open_store(store)
        skipped: list[tuple[str, str]] = []
        scratch = None
        if out is None and not as_json and len(sets) > 1:  # paired tests need the predictions
            import tempfile

            scratch = tempfile.TemporaryDirectory(prefix="embedstore-probe-")
        results_file = out or (None if scratch is None else f"{scratch.name}/probe.jsonl")
        with console.status("probing…") as status:
            results = evaluate_probes(
                s,
                dataset,
                sets,
                method,
                options,
                progress=lambda name, m: status.update(f"{m} on {name} done"),
                on_skip=lambda m, why: skipped.append((m, why)),
                protocol=protocol,
                out=results_file,
                predictions=predictions or scratch is not None,
            )
    for m, why in skipped:  # `--method all`: the feasible methods ran; say why these did not
        err_console.print(f"[yellow]skipped {m}:[/] {why}", highlight=False, soft_wrap=True)
    if as_json:
        for r in results:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    if results:
        render(results, store)
    if results_file and (predictions or scratch is not None):
        from embedstore.cli.report_cmds import render_paired
        from embedstore.results.predictions import predictions_folder

        with user_errors():
            render_paired(results, predictions_folder(results_file))
    if scratch is not None:
        scratch.cleanup()
    if out:
        err_console.print(f"wrote {len(results)} records to {out}")


def render(results: list[ProbeResult], title: str) -> None:
    """One row per feature set, one column group per method: accuracy and AUC ± 95% CI."""
    methods = list(dict.fromkeys(r.method for r in results))
    names = list(dict.fromkeys(r.feature_name for r in results))
    by_key = {(r.feature_name, r.method): r for r in results}
    extra_cols = [m for m in ("auc", "kappa") if any(m in r.metrics for r in results)]
    table = Table(title=f"{title} :: {results[0].dataset}" if results else title)
    table.add_column("features")
    for m in methods:
        table.add_column(f"{m}\nacc", justify="right")
        if m != "fewshot":
            for e in extra_cols:
                table.add_column(f"{m}\n{e}", justify="right")
    for name in names:
        row = [name]
        for m in methods:
            r = by_key.get((name, m))
            row.append(format_metric(r.metrics.get("accuracy")) if r else "—")
            if m != "fewshot":
                for e in extra_cols:
                    row.append(format_metric(r.metrics.get(e)) if r else "—")
        table.add_row(*row)
    console.print(table)
    for r in results:
        if r.method == "fewshot":
            p = r.protocol
            console.print(
                f"fewshot: {p['n_way']}-way {p['k_shot']}-shot, {p['n_query']} queries, "
                f"{p['n_episodes']} episodes from the {r.n_test} test rows; ± is 1.96·σ/√episodes "
                "(the published interval: episode sampling only)",
                highlight=False,
            )
            break
    for r in results:
        acc = r.metrics.get("accuracy", {})
        low, high = acc.get("data_ci_low"), acc.get("data_ci_high")
        if r.method == "fewshot" and low is not None and high is not None:
            console.print(
                f"fewshot {r.feature_name}: 95% interval over test images "
                f"{low * 100:.1f} to {high * 100:.1f} "
                "(bootstrap of the test pool, then episodes)",
                highlight=False,
            )
        if r.method == "logreg":
            console.print(
                f"logreg {r.feature_name}: C={r.hyperparameters['C']:.3g} chosen on "
                f"{r.selected_on}",
                highlight=False,
            )
        if r.method == "dvme" and "attention" in r.extra:
            att = r.extra["attention"]["mean"]
            shares = ", ".join(
                f"{b} {a:.2f}" for b, a in zip(r.extra["attention_backbones"], att, strict=True)
            )
            console.print(
                f"dvme {r.feature_name}: mean attention received: {shares}", highlight=False
            )
    n_test = sorted({r.n_test for r in results})
    n_train = sorted({r.n_train for r in results if r.method != "fewshot"})
    learned = (
        f"; models learned from {'/'.join(map(str, n_train))} labelled rows" if n_train else ""
    )
    console.print(f"scored on {'/'.join(map(str, n_test))} test rows{learned}", highlight=False)
    for name in dict.fromkeys(k for r in results for k in r.caveats if k != "small_test"):
        which = ", ".join(f"{r.method} {r.feature_name}" for r in results if name in r.caveats)
        detail = next(r.caveats[name] for r in results if name in r.caveats)
        console.print(f"[yellow]caveat[/] {describe(name, detail)} ({which})", highlight=False)
    if n_test and 0 < n_test[0] < SMALL_TEST:
        console.print(
            f"[yellow]caveat[/] small test split: {n_test[0]} rows; one row is "
            f"{100 / n_test[0]:.1f} points: differences of a few points are not evidence",
            highlight=False,
        )
    console.print("± is the half-width of a 95% bootstrap CI over test rows unless noted.")

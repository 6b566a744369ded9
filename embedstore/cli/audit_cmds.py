"""`embedstore audit`: leaked duplicates, patients in two splits, label errors and shortcuts,
from the stored embeddings alone."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from embedstore.auditing.html import HTML_TOP
from embedstore.cli._common import (
    DatasetOpt,
    DeviceOpt,
    StoreArg,
    console,
    err_console,
    user_errors,
)

AuditBackboneOpt = Annotated[
    list[str] | None,
    typer.Option("--backbone", "-b", help="A backbone to audit (repeatable; default all)."),
]
MetaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--meta",
        help="An attribute stored with `extract --meta-column` (site, scanner) to test as a "
        "shortcut (repeatable).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    store: StoreArg,
    dataset: DatasetOpt,
    backbone: AuditBackboneOpt = None,
    meta: MetaOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines, no tables.")] = False,
    out: Annotated[
        str | None, typer.Option("--out", help="Write the JSON records here (one per line).")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows shown per finding (and label errors kept).")] = 10,
    k_mad: Annotated[
        float | None,
        typer.Option(help="Duplicate threshold: k robust deviations below the median log(1-cos)."),
    ] = None,
    search: Annotated[
        str, typer.Option(help="Nearest-neighbour search: auto, exact, flat (FAISS) or ivf.")
    ] = "auto",
    device: DeviceOpt = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of folds and bootstrap intervals.")] = 0,
    html: Annotated[
        str | None,
        typer.Option(
            "--html",
            help="Write a page with thumbnails of each duplicate pair and suspected label error "
            "(images read from the dataset's recorded source).",
        ),
    ] = None,
    html_top: Annotated[
        int, typer.Option(help="Pairs and label errors (per backbone) shown in the --html page.")
    ] = HTML_TOP,
    source: Annotated[
        str | None,
        typer.Option(help="Where the images are, for --html, when the store's record is stale."),
    ] = None,
) -> None:
    """Audit a dataset from its embeddings: duplicates, patients in two splits, label errors,
    shortcuts."""
    with user_errors():
        from embedstore.auditing import audit as run_audit
        from embedstore.auditing import write_records

        if html is not None:
            from embedstore.auditing.html import check_page_options

            check_page_options(html, html_top)  # before the audit's minutes
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=err_console, transient=True, disable=as_json,
        ) as bar:  # fmt: skip
            task = bar.add_task("audit", total=None)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what, completed=done, total=total)

            result = run_audit(
                store, dataset, backbones=backbone, meta=meta or (), k_mad=k_mad,
                search=search, top=max(top, html_top) if html else top, device=device,
                seed=seed, progress=progress,
            )  # fmt: skip
        records = result.records()
        if out:
            write_records(records, out)
        if html is not None:
            page = result.write_html(html, top=html_top, source=source)
            if page.no_thumbnails:
                err_console.print(page.no_thumbnails)
            err_console.print(f"audit page written to {html} ({page.n_thumbnails} thumbnails)")
        if as_json:
            for r in records:
                console.print_json(json.dumps(r, default=_plain), indent=None)
            return
        _render(result, top)
        if out:
            err_console.print(f"{len(records)} records written to {out}")


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else str(v)


def _metric(m: dict[str, Any] | None) -> str:
    from embedstore.auditing.records import metric_text

    return metric_text(m)


def _render(result: Any, top: int) -> None:
    counts = result.counts()
    summary = Table(title=f"audit of '{result.dataset}' ({result.n_samples} samples)")
    summary.add_column("finding")
    summary.add_column("count", justify="right")
    for k, v in counts.items():
        summary.add_row(k.replace("_", " "), str(v))
    console.print(summary)
    for name, t in result.thresholds.items():
        console.print(
            f"{name}: duplicate threshold cos ≥ {t['threshold']:.4f} (median nearest-neighbour "
            f"cos {t['median_nn_similarity']:.4f}; {t['method']} search)"
        )
    if result.duplicates:
        per = ", ".join(f"{k}: {v}" for k, v in result.duplicate_counts.items())
        table = Table(title=f"candidate duplicates ({per})")
        for col in ("id a", "id b", "splits", "cos per backbone", "same patient"):
            table.add_column(col)
        for p in result.duplicates[:top]:
            sims = ", ".join(f"{b} {s:.4f}" for b, s in p.similarity.items())
            same = "-" if p.same_group is None else ("yes" if p.same_group else "no")
            table.add_row(p.id_a, p.id_b, p.split_pair, sims, same)
        console.print(table)
        leak = Table(title="test metrics with / without the flagged test rows")
        for col in ("backbone", "probe", "metric", "all test rows", "without flagged"):
            leak.add_column(col)
        for name, v in result.leak.items():
            for probe in ("logistic", "knn"):
                for metric in ("accuracy", "auc"):
                    a, b = (
                        v.get(probe, {}).get("all", {}),
                        v.get(probe, {}).get("without_flagged", {}),
                    )
                    leak.add_row(
                        name, probe, metric, _metric(a.get(metric)), _metric(b.get(metric))
                    )
        console.print(leak)
    if result.patients:
        table = Table(title="patients in more than one split")
        for col in ("patient", "splits", "rows"):
            table.add_column(col)
        for p in result.patients[:top]:
            rows = "; ".join(f"{s}: {', '.join(ids[:3])}" for s, ids in p.ids.items())
            table.add_row(p.group, ", ".join(p.splits), rows)
        console.print(table)
    for name, issues in result.label_issues.items():
        if not issues:
            continue
        table = Table(title=f"suspected label errors, {name} (lowest self-confidence first)")
        for col in ("id", "given", "suggested", "self-confidence"):
            table.add_column(col)
        for i in issues[:top]:
            table.add_row(i.id, i.given, i.suggested, f"{i.self_confidence:.3f}")
        console.print(table)
    if result.shortcuts:
        table = Table(title="shortcuts: attribute read from the embedding, label across values")
        for col in ("backbone", "attribute", "balanced acc. (chance)", "AUC", "worst drop", "flag"):
            table.add_column(col)
        for s in result.shortcuts:
            drops = [v["drop"] for v in s.per_value if "drop" in v]
            worst = f"{max(drops):.3f}" if drops else "-"
            bal = f"{_metric(s.balanced_accuracy)} ({s.chance:.2f})"
            flag = "SHORTCUT" if s.flagged else ("reads it" if s.reads_attribute else "")
            table.add_row(s.backbone, s.attribute, bal, _metric(s.auc), worst, flag)
        console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")

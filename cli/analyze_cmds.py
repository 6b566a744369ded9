"""`embedstore analyze`: what features encode — similarity (CKA, store only), invariance and
occlusion saliency (run backbones over images)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cli._common import DatasetOpt, StoreArg, console, err_console, user_errors

analyze_app = typer.Typer(
    help="What features encode: backbone similarity (CKA), invariance, occlusion saliency.",
    no_args_is_help=True,
)

AnalyzeBackboneOpt = Annotated[
    list[str] | None,
    typer.Option("--backbone", "-b", help="A backbone of the dataset (repeatable; default all)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON lines, no table.")]
OutOpt = Annotated[
    str | None,
    typer.Option(help="Append one JSON record per result to this file (and resume from it)."),
]
PlotOpt = Annotated[str | None, typer.Option(help="Write a PNG figure here.")]


def register(app: typer.Typer) -> None:
    app.add_typer(analyze_app, name="analyze")


@analyze_app.command("similarity")
def similarity(
    store: StoreArg,
    dataset: DatasetOpt,
    backbone: AnalyzeBackboneOpt = None,
    split: Annotated[str, typer.Option(help="Rows compared: train, val, test or all.")] = "test",
    plot: PlotOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Linear and debiased CKA between every pair of a dataset's backbones, from the store."""
    with user_errors():
        from embedstore import open_store
        from embedstore.analyze.records import write_records
        from embedstore.analyze.similarity import backbone_similarity

        matrix = backbone_similarity(
            open_store(store), dataset, backbones=backbone or None, split=split
        )
        records = matrix.to_records()
        if out:
            write_records(records, out)
        if plot:
            from embedstore.analyze.plots import plot_similarity

            plot_similarity(matrix, plot)
    if as_json:
        for r in records:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    table = Table(
        title=f"{store} :: {dataset} — CKA on {matrix.split} (n={matrix.n}), linear / debiased"
    )
    table.add_column("backbone")
    for name in matrix.backbones:
        table.add_column(name, justify="right")
    for i, name in enumerate(matrix.backbones):
        cells = [
            f"{_fmt(matrix.cka[i, j])} / {_fmt(matrix.cka_debiased[i, j])}"
            for j in range(len(matrix.backbones))
        ]
        table.add_row(name, *cells)
    console.print(table)
    console.print(
        f"1.00 = the same representation up to rotation and scale; computed in "
        f"{matrix.seconds:.2f} s from stored embeddings.",
        highlight=False,
    )
    if out:
        err_console.print(f"wrote {len(records)} records to {out}")
    if plot:
        err_console.print(f"wrote {plot}")


def _fmt(v: float) -> str:
    return "—" if v != v else f"{v:.2f}"

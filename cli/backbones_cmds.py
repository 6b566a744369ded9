"""`embedstore backbones`: the registry of named backbones, as a rich table or JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cli._common import console, user_errors
from embedstore.backbones import Preprocess, list_backbones, weights_available
from embedstore.backbones.registry import IMAGENET_MEAN, IMAGENET_STD


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones)


def preprocess_summary(p: Preprocess) -> str:
    """'256→224, imagenet' (plus the interpolation when it is not bilinear)."""
    if p.mean is None and p.std is None:
        norm = "none"
    elif tuple(p.mean or ()) == IMAGENET_MEAN and tuple(p.std or ()) == IMAGENET_STD:
        norm = "imagenet"
    else:
        norm = f"mean={p.mean} std={p.std}"
    interp = "" if p.interpolation == "bilinear" else f", {p.interpolation}"
    return f"{p.resize}→{p.crop}, {norm}{interp}"


def backbones(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered backbones: architecture, dim, preprocessing, whether weights are local."""
    with user_errors():
        rows = [
            {
                "name": s.name,
                "arch": s.arch,
                "dim": s.dim,
                "preprocess": preprocess_summary(s.preprocess),
                "method": s.method,
                "layer": s.layer,
                "weights_local": weights_available(s),
                "filename": s.weights.filename if s.weights else None,
                "url": s.weights.url if s.weights else None,
                "sha256": (s.weights.sha256 or s.weights.sha256_prefix) if s.weights else None,
                "description": s.description,
            }
            for s in list_backbones()
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} registered backbones")
    for col in ("name", "arch", "dim", "preprocessing", "method", "weights"):
        table.add_column(
            col, justify="right" if col == "dim" else "left", no_wrap=col in ("name", "dim")
        )
    for r in rows:
        table.add_row(
            r["name"],
            r["arch"],
            str(r["dim"]),
            r["preprocess"],
            r["method"],
            "[green]local[/]" if r["weights_local"] else "[yellow]missing[/]",
        )
    console.print(table)
    console.print(
        "Weights not on this machine are fetched on first use, or pass --weights NAME=PATH."
    )

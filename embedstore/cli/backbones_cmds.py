"""`embedstore backbones`: the registry of named backbones, as a rich table or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from embedstore.cli._common import console, user_errors

if TYPE_CHECKING:
    from embedstore.backbones import Preprocess


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones)


def preprocess_summary(p: Preprocess) -> str:
    """'256→224, imagenet' (plus the crop mode and interpolation when not center / bilinear)."""
    from embedstore.backbones.specs import IMAGENET_MEAN, IMAGENET_STD

    if p.mean is None and p.std is None:
        norm = "none"
    elif tuple(p.mean or ()) == IMAGENET_MEAN and tuple(p.std or ()) == IMAGENET_STD:
        norm = "imagenet"
    else:
        norm = f"mean={p.mean} std={p.std}"
    mode = "" if p.crop_mode == "center" else f", {p.crop_mode}"
    interp = "" if p.interpolation == "bilinear" else f", {p.interpolation}"
    return f"{p.resize}→{p.crop}, {norm}{mode}{interp}"


UNKNOWN = "unknown until downloaded"
NOT_RECORDED = "not recorded"


def backbone_rows(specs: list, weights_available=None) -> list[dict]:
    """One JSON-able row per entry, as `embedstore backbones` shows it (and docs/backbones-table.md).

    An entry whose facts come from a hub repo's config files that are not on this machine (RAD-DINO,
    BiomedCLIP before `huggingface-cli download`) has dim None and preprocessing "unknown until
    downloaded", never a made-up 0. ``weights_available``: the function saying whether an entry's
    weights are on this machine (None: leave the column out, as the docs do).
    """
    rows = []
    for s in specs:
        known = s.dim > 0 and s.preprocess.crop is not None
        row = {
            "name": s.name,
            "arch": s.arch,
            "source": s.source,
            "dim": s.dim if known else None,
            "preprocess": preprocess_summary(s.preprocess)
            if known
            else f"{UNKNOWN} (huggingface-cli download {s.hub_id})",
            "recipe": s.recipe,
            "method": s.method,
            "layer": s.layer,
            "licence": s.licence,
            "gated": s.gated,
            "hub_id": s.hub_id,
            "hash": _hash_status(s),
            "filename": s.weights.filename if s.weights else None,
            "url": (s.weights.url or s.weights.page) if s.weights else None,
            "sha256": (s.weights.sha256 or s.weights.sha256_prefix) if s.weights else None,
            "description": s.description,
            "reference": s.reference,
        }
        if weights_available is not None:
            row["weights_local"] = weights_available(s)
        rows.append(row)
    return rows


def _hash_status(s) -> str:
    if s.weights is None:
        return "hub (no published hash)" if s.hub_id else "none"
    if s.weights.sha256:
        return "sha256 published"
    if s.weights.sha256_prefix:
        return "sha256 prefix published"
    return "none published"


def backbones(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    backbones_file: Annotated[
        str | None,
        typer.Option("--backbones-file", help="Also list the entries of this TOML backbones file."),
    ] = None,
) -> None:
    """List the registered backbones: architecture, dim, preprocessing, recipe, licence, gating,
    published hash, whether weights are local. Any timm model is also usable as timm/<name>."""
    # The registry's listing imports no torch / timm: entries state their facts as plain data.
    from embedstore.backbones import list_entries, load_backbones_file, weights_available

    with user_errors():
        if backbones_file:
            load_backbones_file(backbones_file)
        rows = backbone_rows(list_entries(), weights_available)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} registered backbones (plus any timm model as timm/<name>)")
    cols = ("name", "arch", "dim", "preprocessing", "recipe", "licence", "hash", "weights")
    for col in cols:
        table.add_column(
            col, justify="right" if col == "dim" else "left", no_wrap=col in ("name", "dim")
        )
    for r in rows:
        licence = (r["licence"] or NOT_RECORDED) + (" [red]gated[/]" if r["gated"] else "")
        table.add_row(
            r["name"],
            r["arch"],
            "—" if r["dim"] is None else str(r["dim"]),
            r["preprocess"],
            r["recipe"],
            licence,
            r["hash"],
            "[green]local[/]" if r["weights_local"] else "[yellow]missing[/]",
        )
    console.print(table)
    console.print(
        "Weights not on this machine are fetched on first use, or pass --weights NAME=PATH."
    )

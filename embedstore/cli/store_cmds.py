"""`embedstore ls` and `embedstore info`: what a store holds, as rich tables or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from embedstore import open_store
from embedstore.cli._common import console, human_bytes, same_value, user_errors
from embedstore.errors import InvalidDataError


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("info")(info)


def ls(
    store: Annotated[str, typer.Argument(help="Path of the store (a .zarr folder).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every dataset and backbone array in a store: shape, dtype, size, completeness."""
    with user_errors():
        s = open_store(store)
        rows = [_dataset_rows(s, d) for d in s.datasets()]
    if as_json:
        out = [
            {**(ds if isinstance(ds, dict) else asdict(ds)),
             "arrays": [a if isinstance(a, dict) else asdict(a) for a in arrays]}
            for ds, arrays in rows
        ]  # fmt: skip
        typer.echo(
            json.dumps({"store": store, "created_by": s.created_by, "datasets": out}, indent=2)
        )
        return
    table = Table(title=f"{store}  ({s.created_by}, format {s.format_version})")
    for col in ("dataset", "task", "samples", "backbone", "shape", "dtype", "on disk", "status"):
        table.add_column(col, justify="right" if col in ("samples", "on disk") else "left")
    for ds, arrays in rows:
        if isinstance(ds, dict):  # a damaged dataset: say so, list the rest
            table.add_row(ds["name"], "", "", "—", "", "", "", _broken(ds))
            continue
        if not arrays:
            table.add_row(ds.name, ds.task, str(ds.n_samples), "—", "", "", "", "")
        for i, a in enumerate(arrays):
            if isinstance(a, dict):  # damaged or creation interrupted: say so, list the rest
                table.add_row(
                    ds.name if i == 0 else "", ds.task if i == 0 else "",
                    str(ds.n_samples) if i == 0 else "", a["backbone"], "", "", "", _broken(a),
                )  # fmt: skip
                continue
            table.add_row(
                ds.name if i == 0 else "",
                ds.task if i == 0 else "",
                str(ds.n_samples) if i == 0 else "",
                a.backbone,
                f"{a.shape[0]}×{a.shape[1]}",
                a.dtype,
                human_bytes(a.nbytes_stored),
                _status(a),
            )
    if not rows:
        console.print(f"{store}: no datasets yet")
        return
    console.print(table)


def info(
    store: Annotated[str, typer.Argument(help="Path of the store (a .zarr folder).")],
    dataset: Annotated[str | None, typer.Argument(help="A dataset in the store.")] = None,
    backbone: Annotated[
        str | None, typer.Argument(help="A backbone extracted for DATASET.")
    ] = None,
    dataset_opt: Annotated[
        str | None, typer.Option("--dataset", "-d", help="The same as DATASET.")
    ] = None,
    backbone_opt: Annotated[
        str | None, typer.Option("--backbone", "-b", help="The same as BACKBONE.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Describe a store, one dataset (classes, splits, backbones), or one array (provenance)."""
    with user_errors():
        dataset = same_value(dataset, dataset_opt, "DATASET", "--dataset")
        backbone = same_value(backbone, backbone_opt, "BACKBONE", "--backbone")
        if backbone is not None and dataset is None:
            raise InvalidDataError(
                "a BACKBONE needs its DATASET: info STORE -d DATASET -b BACKBONE"
            )
        s = open_store(store)
        payload: dict[str, Any]
        if dataset is None:
            payload = {
                "store": store,
                "format": s.format_version,
                "created_by": s.created_by,
                "datasets": [_dataset_or_damage(s, d) for d in s.datasets()],
            }
        elif backbone is None:
            ds, arrays = _dataset_rows(s, dataset)
            if isinstance(ds, dict):
                s.dataset_info(dataset)  # raises what is wrong with it
            payload = {
                **asdict(ds),
                "arrays": [a if isinstance(a, dict) else asdict(a) for a in arrays],
            }
        else:
            backbone = _resolve(s, dataset, backbone)
            payload = {
                **asdict(s.array_info(dataset, backbone)),
                "missing": s.missing(dataset, backbone),
            }
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    if dataset is None:
        table = Table(title=f"{store}")
        for col in ("dataset", "task", "classes", "samples", "train/val/test", "backbones"):
            table.add_column(col)
        for ds in payload["datasets"]:
            if "damaged" in ds:
                table.add_row(ds["name"], _broken(ds), "", "", "", "")
                continue
            c = ds["split_counts"]
            table.add_row(
                ds["name"],
                ds["task"],
                str(len(ds["class_names"])),
                str(ds["n_samples"]),
                f"{c['train']}/{c['val']}/{c['test']}",
                ", ".join(ds["backbones"]) or "—",
            )
        console.print(f"format {s.format_version}, written by {s.created_by}")
        console.print(table)
    elif backbone is None:
        table = Table(title=f"{store} :: {dataset}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        c = payload["split_counts"]
        table.add_row("task", payload["task"])
        table.add_row("classes", ", ".join(payload["class_names"]))
        table.add_row("samples", str(payload["n_samples"]))
        table.add_row("train / val / test", f"{c['train']} / {c['val']} / {c['test']}")
        table.add_row("patient groups", "yes" if payload["has_group"] else "no")
        table.add_row("source", payload["source"] or "—")
        for a in payload["arrays"]:
            if "shape" not in a:
                table.add_row(a["backbone"], _broken(a))
                continue
            table.add_row(
                a["backbone"],
                f"{a['shape'][0]}×{a['shape'][1]} {a['dtype']}, {human_bytes(a['nbytes_stored'])}, "
                f"{'complete' if a['complete'] else 'INCOMPLETE'}"
                + (", imported" if a["provenance"].get("computed_by") == "external" else ""),
            )
        console.print(table)
    else:
        table = Table(title=f"{store} :: {dataset} :: {backbone}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        table.add_row("shape", f"{payload['shape'][0]}×{payload['shape'][1]}")
        table.add_row("dtype", payload["dtype"])
        table.add_row("chunk rows", str(payload["chunk_rows"]))
        table.add_row("on disk", human_bytes(payload["nbytes_stored"]))
        table.add_row("status", _status_dict(payload))
        if payload["provenance"].get("computed_by") == "external":  # `embedstore add`
            imp = payload["provenance"].get("imported", {})
            table.add_row(
                "origin",
                f"imported, not computed by embedstore: {imp.get('format', '?')} "
                f"{imp.get('file', '?')} (sha256 {imp.get('sha256', '?')})",
            )
        table.add_row("missing rows", str(payload["n_missing"]))
        table.add_row(
            "chunk checksums",
            "recorded (embedstore verify checks every chunk)"
            if payload["chunk_checksums"]
            else "[yellow]not recorded[/] (format 1, or removed): verify cannot check the chunks' "
            "bytes; extract again with --overwrite to record them",
        )
        for key, value in payload["provenance"].items():
            table.add_row(
                f"provenance.{key}", json.dumps(value) if not isinstance(value, str) else value
            )
        console.print(table)
        if payload["missing"]:
            _print_missing(payload["missing"])


_MISSING_SHOWN = 50


def _print_missing(missing: list[dict]) -> None:
    """The rows whose image could not be read at extraction: row, id and why."""
    table = Table(title=f"missing rows ({len(missing)}): zeros in the array, left out by probes")
    for col in ("row", "id", "reason"):
        table.add_column(col, justify="right" if col == "row" else "left", overflow="fold")
    for m in missing[:_MISSING_SHOWN]:
        table.add_row(str(m["row"]), m["id"], m["reason"])
    console.print(table)
    if len(missing) > _MISSING_SHOWN:
        console.print(
            f"… and {len(missing) - _MISSING_SHOWN} more; `--json` lists every one", highlight=False
        )


INTERRUPTED = "creation interrupted before any row was written: rerun the same extract command"


def _dataset_rows(s, dataset: str):
    """(DatasetInfo, [ArrayInfo or dict]) of a dataset; a dict stands for a damaged dataset or
    array ("damaged": what is wrong) or an array whose creation was interrupted ("interrupted"),
    so that ls lists the rest."""
    from embedstore.errors import CorruptStoreError

    try:
        ds = s.dataset_info(dataset)
    except CorruptStoreError as exc:
        return {"name": dataset, "damaged": str(exc)}, []
    arrays: list = []
    for b in ds.backbones:
        try:
            arrays.append(s.array_info(dataset, b))
        except CorruptStoreError as exc:
            arrays.append({"dataset": dataset, "backbone": b, "damaged": str(exc)})
    arrays += [
        {"dataset": dataset, "backbone": b, "interrupted": INTERRUPTED}
        for b in s.interrupted_backbones(dataset)
    ]
    return ds, sorted(arrays, key=lambda a: a["backbone"] if isinstance(a, dict) else a.backbone)


def _dataset_or_damage(s, dataset: str) -> dict:
    """A dataset's info as a dict, or {"name", "damaged": what is wrong} (info lists the rest)."""
    from embedstore.errors import CorruptStoreError

    try:
        return asdict(s.dataset_info(dataset))
    except CorruptStoreError as exc:
        return {"name": dataset, "damaged": str(exc)}


def _broken(a: dict) -> str:
    if "interrupted" in a:
        return "[yellow]incomplete[/] (creation interrupted: rerun extract)"
    return "[red]damaged[/] (embedstore verify)"


def _status(a) -> str:
    if a.complete:
        return "complete" + (f" ({a.n_missing} missing)" if a.n_missing else "")
    return f"[yellow]incomplete {a.rows_written}/{a.shape[0]}[/]"


def _status_dict(a: dict) -> str:
    if a["complete"]:
        return "complete"
    return f"incomplete ({a['rows_written']} of {a['shape'][0]} rows written)"


def _resolve(s, dataset: str, backbone: str) -> str:
    """The array a short name means (as `probe -b` resolves it: tag or architecture); a name that
    matches no complete array is kept, so that `info` can say what state that array is in."""
    from embedstore.errors import ArrayNotFoundError
    from embedstore.names import resolve_backbone

    try:
        return resolve_backbone(backbone, s.backbones(dataset), dataset=dataset)
    except ArrayNotFoundError:
        return backbone

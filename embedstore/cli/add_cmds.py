"""`embedstore add` and `embedstore export-features`: embeddings in and out of other tools' formats."""

from __future__ import annotations

from typing import Annotated

import typer

from embedstore.cli._common import console, err_console, human_bytes, user_errors


def register(app: typer.Typer) -> None:
    app.command("add")(add)
    app.command("export-features")(export_features)


def add(
    store: Annotated[str, typer.Argument(help="Store path (created if absent).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset in the store.")],
    backbone: Annotated[
        str, typer.Option("--backbone", "-b", help="Name of the imported array (any name).")
    ],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The embeddings: .npy, .npz, .h5, a folder of <id>.h5, .parquet, or an eva "
            "output folder (manifest.csv + .pt files).",
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="npy, npz, hdf5, hdf5-folder, parquet or eva (default: by suffix)."
        ),
    ] = None,
    ids: Annotated[
        str | None,
        typer.Option("--ids", help="File of sample ids in row order (one per line, or a CSV)."),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column",
            help="Id column of a Parquet file (id), eva manifest (origin) or ids CSV.",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The array: npz member (embeddings), HDF5 dataset (features, embeddings), "
            "Parquet list column.",
        ),
    ] = None,
    ids_key: Annotated[
        str | None, typer.Option("--ids-key", help="npz/HDF5 ids array (ids, then names).")
    ] = None,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing",
            help="Record dataset samples absent from the file as missing rows, not an error.",
        ),
    ] = False,
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="The model that made them (recorded).")
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="How they were made (recorded).")
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            help="Stored dtype: float16 or float32 (default: float16 "
            "for float16 input, else float32).",
        ),
    ] = None,  # fmt: skip
    chunk_rows: Annotated[
        int | None, typer.Option("--chunk-rows", help="Rows per stored chunk (resume unit).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an array of this name.")
    ] = False,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="CSV of ids, labels, split, group: create the dataset from it (no images).",
        ),
    ] = None,
    table_id_column: Annotated[
        str, typer.Option("--table-id-column", help="--labels: the id column.")
    ] = "id",
    label_column: Annotated[
        list[str] | None,
        typer.Option("--label-column", help="--labels: label column; repeat for multilabel."),
    ] = None,
    split_column: Annotated[
        str | None, typer.Option("--split-column", help="--labels: train/val/test column.")
    ] = None,
    group_column: Annotated[
        str | None, typer.Option("--group-column", help="--labels: patient/group column.")
    ] = None,
    class_names: Annotated[
        str | None, typer.Option("--class-names", help="a,b,c: names of the integer labels.")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="binary, multiclass, multilabel or ordinal.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for splits made here.")] = 0,
) -> None:
    """Import embeddings computed elsewhere into a dataset, rows matched by sample id."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from embedstore.interop import add_file

    with user_errors():
        table_options = {
            "id_column": table_id_column,
            "label_columns": label_column,
            "split_column": split_column,
            "group_column": group_column,
            "class_names": class_names,
            "task": task,
            "seed": seed,
        }
        if labels is None:  # eva's manifest is the table: only what the command line names
            table_options = {k: v for k, v in table_options.items() if v is not None}
            del table_options["id_column"]
        bar = Progress(TextColumn(f"{backbone}"), BarColumn(), MofNCompleteColumn(),
                       console=err_console, transient=True)  # fmt: skip
        with bar:
            job = bar.add_task("rows", total=None)
            info = add_file(
                store,
                dataset,
                backbone,
                source,
                format=fmt,
                ids=ids,
                id_column=id_column,
                key=key,
                ids_key=ids_key,
                allow_missing=allow_missing,
                model_name=model_name,
                note=note,
                dtype=dtype,
                chunk_rows=chunk_rows,
                overwrite=overwrite,
                table=labels,
                table_options=table_options,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
            )
    imported = info.provenance.get("imported", {})
    console.print(
        f"{store} :: {dataset} :: {backbone}: {info.shape[0]}×{info.shape[1]} {info.dtype}, "
        f"{info.n_missing} missing, {'complete' if info.complete else 'INCOMPLETE'}; imported "
        f"from {imported.get('format', '?')} {imported.get('file', '?')} "
        f"(sha256 {str(imported.get('sha256', ''))[:12]}…), computed_by external"
    )


def export_features(
    store: Annotated[str, typer.Argument(help="Store path, archive (.zip) or URL.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset in the store.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output: .parquet, .npz or .h5.")],
    backbone: Annotated[
        list[str] | None,
        typer.Option("--backbone", "-b", help="An array to include (repeatable; default all)."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="parquet, npz or hdf5 (default: by suffix).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output file.")
    ] = False,
) -> None:
    """Write ids, labels, splits, groups and embeddings as Parquet, .npz or HDF5 for other tools."""
    from embedstore.interop import export_features as export

    with user_errors():
        r = export(store, dataset, out, backbones=backbone, format=fmt, overwrite=overwrite)
    console.print(
        f"wrote {r.path} ({r.format}, {human_bytes(r.nbytes)}): {r.n_samples} samples, "
        f"{', '.join(r.backbones)}"
    )

"""`embedstore extract`: run backbones over an image source into a store, with a progress bar
per backbone and a summary table at the end.

Under ``torchrun ... --no-python embedstore extract ...`` every rank runs this same command;
only rank 0 shows progress and the summary (both count every rank's rows)."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from embedstore.cli._common import WeightsOpt, console, err_console, parse_weights, user_errors


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_cmd)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning (a class missing from a split) as one yellow line, as it happens; under
    torchrun only rank 0 prints it (every rank checks the same source)."""
    from embedstore.extraction import is_main_process

    if not is_main_process():
        return
    err_console.print(
        f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True
    )


def extract_cmd(
    store: Annotated[
        str,
        typer.Argument(help="Store to fill (a .zarr folder or an s3:// URL); created if missing."),
    ],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name inside the store.")],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Image folder (one subfolder per class), a .csv (paths or s3:// / https:// "
            "URLs; may itself be a URL), a .npz, tar shards ('imgs-{000000..000099}.tar', a "
            "glob, or a folder of .tar), or 'demo'.",
        ),
    ],
    backbone: Annotated[
        list[str],
        typer.Option(
            "--backbone",
            "-b",
            help="Registered backbone; repeat for several (each image is decoded once for all).",
        ),
    ],
    weights: WeightsOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 64,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Loader worker processes (default: auto).")
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="cpu, cuda, cuda:N, or auto (cuda when torch sees a GPU, else cpu).",
        ),
    ] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="Stored dtype: float16 or float32.")] = (
        "float16"
    ),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a different dataset; redo complete arrays.")
    ] = False,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Record unreadable images as missing rows, not an error."),
    ] = False,
    path_column: Annotated[
        str, typer.Option("--path-column", help="CSV: column with image paths.")
    ] = "path",
    label_column: Annotated[
        list[str] | None,
        typer.Option(
            "--label-column",
            help="CSV: label column (default: label); repeat for multilabel 0/1 columns.",
        ),
    ] = None,
    split_column: Annotated[
        str | None, typer.Option("--split-column", help="CSV: column with train/val/test.")
    ] = None,
    group_column: Annotated[
        str | None, typer.Option("--group-column", help="CSV: patient/group id column.")
    ] = None,
    meta_column: Annotated[
        list[str] | None,
        typer.Option(
            "--meta-column",
            help="CSV column / tar .json key with a per-sample attribute (site, scanner) to "
            "store for `embedstore audit --meta`; repeatable.",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Seed of the stratified 70/10/20 train/val/test split made when the source "
            "has none.",
        ),
    ] = 0,
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            "--chunk-rows",
            help="Rows per stored chunk: the unit of resume and of work per torchrun rank "
            "(a multiple of --batch-size; default ~4 MiB, but at least 8 chunks when the "
            "dataset allows, never under 64 rows).",
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="binary, multiclass, multilabel or ordinal (default: from the labels; "
            "ordinal must be declared).",
        ),
    ] = None,
    class_names: Annotated[
        str | None,
        typer.Option(
            "--class-names",
            help="a,b,c: names of the distinct integer labels, lowest first (.npz, CSV of ids), "
            "or the class order of a folder/CSV (lowest grade first for ordinal).",
        ),
    ] = None,
    backbones_file: Annotated[
        str | None,
        typer.Option(
            "--backbones-file",
            help="TOML file of own backbone entries (arch, checkpoint, preprocess, recipe).",
        ),
    ] = None,
    unverified_weights: Annotated[
        bool,
        typer.Option(
            "--unverified-weights",
            help="Accept a --weights file whose sha256 differs from the published one "
            "(your own fine-tuned checkpoint); the store records verified: false.",
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="CPU threads of the forward pass (they change the last bits; recorded in the "
            "array). Default: the count a resumed array recorded, else torch's. Give the same "
            "N to a plain run and torchrun to make them bit-identical.",
        ),
    ] = None,
) -> None:
    """Extract embeddings of each backbone over SOURCE into STORE (resumable; rerun to continue)."""
    from embedstore.data import open_source
    from embedstore.data.splits import SmallClassWarning
    from embedstore.extraction import ExtractProgress, extract, is_main_process

    with user_errors():
        weight_map = parse_weights(weights or [])
        src = open_source(
            source,
            path_column=path_column,
            label_columns=label_column or None,
            split_column=split_column,
            group_column=group_column,
            task=task,
            class_names=class_names,
            seed=seed,
            skip_bad=skip_bad,
            meta_columns=meta_column or (),
        )
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.1f} img/s"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
            disable=not is_main_process(),
        )
        tasks: dict[str, TaskID] = {}

        def on_progress(p: ExtractProgress) -> None:
            if not progress.live.is_started:  # on the first batch: an early error prints alone
                progress.start()
            if p.backbone not in tasks:
                tasks[p.backbone] = progress.add_task(
                    f"[{p.index + 1}/{p.n_backbones}] {p.backbone}", total=p.total, rate=0.0
                )
            progress.update(tasks[p.backbone], completed=p.done, rate=p.images_per_s, refresh=False)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", SmallClassWarning)
                warnings.showwarning = _show_warning
                try:
                    summaries = extract(
                        store,
                        dataset=dataset,
                        source=src,
                        backbones=backbone,
                        weights=weight_map,
                        batch_size=batch_size,
                        workers="auto" if workers is None else workers,
                        device=device,
                        dtype=dtype,
                        overwrite=overwrite,
                        skip_bad=skip_bad,
                        progress=on_progress,
                        chunk_rows=chunk_rows,
                        unverified_weights=unverified_weights,
                        backbones_file=backbones_file,
                        threads=threads,
                    )
                finally:
                    if progress.live.is_started:
                        progress.stop()
        except KeyboardInterrupt:
            err_console.print(
                "[yellow]interrupted[/]: complete chunks are kept; run the same command again "
                "to resume"
            )
            raise typer.Exit(130) from None
    if not is_main_process():
        return
    ranks = f", {summaries[0].world_size} processes" if summaries[0].world_size > 1 else ""
    table = Table(title=f"{store} :: {dataset}  ({len(src)} images, {src.description}{ranks})")
    for col in ("backbone", "rows", "dim", "dtype", "seconds", "images/s", "missing", "status"):
        table.add_column(col, justify="left" if col in ("backbone", "dtype", "status") else "right")
    for s in summaries:
        table.add_row(
            s.backbone,
            str(s.rows),
            str(s.dim),
            s.dtype,
            f"{s.seconds:.1f}",
            f"{s.images_per_s:.1f}" if s.rows_extracted else "—",
            str(s.n_missing),
            s.status + (f" ({s.start_row} rows done before)" if s.status == "resumed" else ""),
        )
    console.print(table)

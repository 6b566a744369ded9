"""`embedstore export / verify / import / merge`: share stores as one verified file or a URL."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from embedstore.archive import (
    GUARANTEE,
    ON_CONFLICT,
    ImportResult,
    export_archive,
    import_archive,
    merge_stores,
    verify,
)
from embedstore.cli._common import console, err_console, human_bytes, user_errors


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify_cmd)
    app.command("import")(import_cmd)
    app.command("merge")(merge)


def export(
    store: Annotated[str, typer.Argument(help="Store to export (a .zarr folder, archive or URL).")],
    archive: Annotated[str, typer.Argument(help="Archive file to write (e.g. shared.zip).")],
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", "-d", help="Dataset to include (repeat); default all."),
    ] = None,
    backbone: Annotated[
        list[str] | None,
        typer.Option(
            "--backbone", "-b", help="Backbone to include (repeat); default all complete."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace ARCHIVE if it exists.")
    ] = False,
) -> None:
    """Write datasets and complete backbone arrays into one checksummed archive file."""
    with user_errors():
        result = export_archive(
            store, archive, datasets=dataset, backbones=backbone, overwrite=overwrite
        )
    for line in result.skipped:
        err_console.print(f"[yellow]skipped[/] {line}", highlight=False)
    for line in result.stale_partials_removed:
        err_console.print(
            f"removed the temporary file of an interrupted export: {escape(line)}",
            highlight=False,
            soft_wrap=True,
        )
    n_bb = sum(len(b) for b in result.datasets.values())
    console.print(
        f"wrote {result.archive}: {len(result.datasets)} dataset(s), {n_bb} backbone array(s), "
        f"{result.n_arrays} arrays checksummed, {human_bytes(result.nbytes)}",
        highlight=False,
    )
    console.print(
        f"sha256 {result.sha256}: send it to the recipients through a channel you trust, beside "
        "the file; `embedstore verify` prints the same for the file they received",
        highlight=False,
        soft_wrap=True,
    )


LayoutOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--layout-only",
        help="For an archive whose manifest is missing or unreadable: check the layout rules and "
        "the chunk checksums recorded at write time only, not the manifest's checksums.",
    ),
]


def verify_cmd(
    location: Annotated[str, typer.Argument(help="A store folder, an archive file, or a URL.")],
    layout_only: LayoutOnlyOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Recompute checksums and check the layout of every array; exit 1 on any problem.

    Verify guards against accidents (truncation, bit rot, partial copies, deleted files), not
    tampering: anyone can rewrite data and manifest together. To know an archive is the one its
    author exported, compare its sha256 (printed here) with one they sent through a trusted
    channel. An archive without its manifest fails, unless --layout-only is given.
    """
    with user_errors():
        report = verify(location, layout_only=layout_only)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(
            f"{escape(location)} ({report.kind}): checked {report.checked}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"[dim]{escape(GUARANTEE)}[/]", highlight=False, soft_wrap=True)
        if report.sha256:
            console.print(f"archive sha256: {report.sha256}", highlight=False, soft_wrap=True)
        table = Table()
        for col in ("array", "checksum", "status"):
            table.add_column(col)
        for c in report.checks:
            status = "[green]OK[/]" if c.ok else "[red]" + escape("; ".join(c.problems)) + "[/]"
            table.add_row(escape(c.path), c.checksum, status)
        console.print(table)
        if report.unrecorded:
            console.print(
                f"[yellow]note:[/] no checksum covers {escape(', '.join(report.unrecorded))} "
                "(format-1 arrays, or their record was deleted): only the layout was checked; "
                "extract them again (--overwrite) to record checksums",
                highlight=False,
                soft_wrap=True,
            )
        for name in report.interrupted:
            console.print(
                f"[yellow]note:[/] {escape(name)}: its creation was interrupted before any row "
                "was written, so it holds nothing yet (not damage); the next `embedstore "
                "extract` of that backbone recreates it",
                highlight=False,
                soft_wrap=True,
            )
        for p in report.problems:
            err_console.print(f"[red]problem:[/] {escape(p)}", highlight=False, soft_wrap=True)
        if report.ok:
            console.print("[green]all checks passed[/]")
    if not report.ok:
        if not as_json:
            n = len(report.problem_lines())
            err_console.print(f"[bold red]error:[/] verification failed ({n} problem(s))")
        raise typer.Exit(1)


def import_cmd(
    archive: Annotated[
        str, typer.Argument(help="Archive file (or store folder, or URL) to import.")
    ],
    store: Annotated[str, typer.Argument(help="Local store to add to; created if missing.")],
    on_conflict: Annotated[
        str,
        typer.Option(
            "--on-conflict",
            help="A dataset of the same name with different ids/labels/splits: "
            f"{' | '.join(ON_CONFLICT)} (rename imports it as NAME-2).",
        ),
    ] = "fail",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace backbones already complete in STORE.")
    ] = False,
    layout_only: LayoutOnlyOpt = False,
) -> None:
    """Verify an archive, then add its datasets and backbones to a local store.

    An archive without its manifest is refused, unless --layout-only is given.
    """
    with user_errors():
        result = import_archive(
            archive, store, on_conflict=on_conflict, overwrite=overwrite, layout_only=layout_only
        )
    _print_result("imported", result)


def merge(
    store_a: Annotated[str, typer.Argument(help="First store, archive or URL.")],
    store_b: Annotated[str, typer.Argument(help="Second store, archive or URL.")],
    out: Annotated[str, typer.Argument(help="New local store to write.")],
    layout_only: LayoutOnlyOpt = False,
) -> None:
    """Combine two stores whose common datasets agree (ids, labels, splits) into a new store."""
    with user_errors():
        result = merge_stores(store_a, store_b, out, layout_only=layout_only)
    _print_result("merged", result)


def _print_result(verb: str, r: ImportResult) -> None:
    for stage in r.stale_stages_removed:
        err_console.print(
            f"removed the staging folder of an interrupted import: {escape(stage)}",
            highlight=False,
            soft_wrap=True,
        )
    for src, dst in r.renamed.items():
        console.print(f"dataset '{src}' conflicts with the target: imported as '{dst}'")
    for d in r.datasets_skipped:
        err_console.print(f"[yellow]skipped[/] dataset '{d}' (conflicts with the target)")
    for line in r.backbones_skipped:
        err_console.print(f"[yellow]skipped[/] {line}", highlight=False)
    console.print(
        f"{verb} into {r.target}: {len(r.datasets_added)} new dataset(s), "
        f"{len(r.backbones_added)} backbone(s) added, {len(r.backbones_replaced)} replaced",
        highlight=False,
    )
    if r.backbones_added or r.datasets_added:
        console.print("  " + ", ".join(r.backbones_added or r.datasets_added), highlight=False)

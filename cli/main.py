"""The `embedstore` command: one Typer app combining one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import (
    analyze_cmds,
    archive_cmds,
    backbones_cmds,
    extract_cmds,
    probe_cmds,
    store_cmds,
    sweep_cmds,
)
from embedstore import __version__

app = typer.Typer(
    name="embedstore",
    help="Extract backbone embeddings once into Zarr; probe, sweep and fuse them in seconds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Command groups, in the order `--help` lists them.
for _group in (
    store_cmds,
    backbones_cmds,
    extract_cmds,
    probe_cmds,
    sweep_cmds,
    archive_cmds,
    analyze_cmds,
):
    _group.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"embedstore {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Extract backbone embeddings once into Zarr; probe, sweep and fuse them in seconds."""


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

"""What every command shares: the two rich consoles and turning library errors into exit 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from embedstore.errors import EmbedstoreError
from embedstore.probes.features import parse_fuse

# Piped or captured output has no terminal width; rich would squeeze tables into 80 columns.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print an EmbedstoreError as one red line on stderr and exit 1, without a traceback."""
    try:
        yield
    except EmbedstoreError as exc:
        # escape: a message naming "shard.tar[member.png]" must not be read as rich markup
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


# Arguments and options shared by the commands that evaluate feature sets (probe, sweep).
StoreArg = Annotated[str, typer.Argument(help="Store path, archive (.zip) or URL.")]
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset in the store.")]
BackboneOpt = Annotated[
    list[str] | None,
    typer.Option("--backbone", "-b", help="A backbone to evaluate alone (repeatable)."),
]
FuseOpt = Annotated[
    list[str] | None,
    typer.Option("--fuse", help="Comma-separated backbones to fuse, e.g. dino,swav (repeatable)."),
]


def feature_sets(backbone: list[str] | None, fuse: list[str] | None) -> list[list[str]]:
    """`-b a -b b --fuse a,b` -> [["a"], ["b"], ["a", "b"]]."""
    return [[b] for b in backbone or []] + [list(parse_fuse(f)) for f in fuse or []]

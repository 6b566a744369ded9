"""What every command shares: the two rich consoles and turning library errors into exit 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from embedstore.errors import EmbedstoreError

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
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"

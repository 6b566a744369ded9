"""`embedstore protocols`: every published protocol preset, with its paper and exact settings."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from embedstore.cli._common import console, user_errors


def register(app: typer.Typer) -> None:
    app.command("protocols")(protocols)


def _settings(hyper: dict) -> str:
    parts = []
    for key, value in hyper.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items())
            parts.append(f"{key}: {inner}")
        else:
            parts.append(f"{key}={value}")
    return "\n".join(parts)


def subsets_text(p) -> str:
    """'fractions 0.01, 0.1, 1.0 × 5 seeds' (a sweep preset), '' for a probe preset."""
    subsets = ", ".join(f"{k} {', '.join(map(str, v))}" for k, v in p.subsets.items())
    return subsets + (f" × {p.seeds} seeds" if p.command == "sweep" else "")


def protocols(
    name: Annotated[
        str | None, typer.Argument(help="Show one preset in full (default: list them all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the protocol presets (--protocol NAME of probe and sweep) with their source papers."""
    from embedstore.probes.presets import PROTOCOLS, get_protocol

    with user_errors():
        chosen = [get_protocol(name)] if name else list(PROTOCOLS.values())
    if as_json:
        console.print_json(json.dumps([p.record() for p in chosen]))
        return
    table = Table(title="Protocol presets (--protocol NAME)", show_lines=True)
    for col in ("name", "command", "methods", "settings", "selection", "metric", "subsets",
                "paper"):  # fmt: skip
        table.add_column(col, overflow="fold")
    for p in chosen:
        table.add_row(
            p.name,
            p.command,
            ", ".join(p.methods),
            _settings(p.hyperparameters),
            p.selection,
            p.metric,
            subsets_text(p).replace(" × ", "\n× ") or "-",
            f"{p.paper}\n[dim]{p.source}[/]",
        )
    console.print(table)
    if name:
        for note in chosen[0].notes:
            console.print(f"- {note}")

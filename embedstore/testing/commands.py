"""Every CLI command with its click object, and arguments for its required parameters: the walk
of tests/faults/test_faults_cli.py and the bad-inputs table of benchmarks/bench_faults.py.

The list is generated from the commands themselves (:data:`embedstore.cli.main.COMMANDS` and each
command's parameters), so a command added later is walked too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from embedstore.cli.main import COMMANDS, app

# typer 0.29 builds its commands with its own copy of click (typer._click, private), so a command is
# typed as Any here; it has click's Command attributes (params, and commands for a group).
Command = Any


def commands() -> list[tuple[list[str], Command]]:
    """(path of words, click command) for every command and subcommand, in COMMANDS order."""
    group: Command = typer.main.get_command(app)  # a group: it has get_command
    ctx = typer.Context(group)
    out: list[tuple[list[str], Command]] = []
    for name in COMMANDS:
        cmd = group.get_command(ctx, name)
        subs = getattr(cmd, "commands", None)
        if subs:
            out += [([name, sub], c) for sub, c in subs.items()]
        else:
            out.append(([name], cmd))
    return out


COMMAND_LIST = commands()


def fill(cmd: Command, store: Path, tmp: Path, dataset: str, backbone: str) -> list[str]:
    """Arguments for every required parameter: the store first, then fresh paths and names."""
    argv: list[str] = []
    first = True
    for p in cmd.params:
        if not p.required:
            continue
        if p.param_type_name == "argument":
            argv.append(str(store) if first else str(tmp / f"out-{p.name}"))
            first = False
        elif p.name == "dataset":
            argv += [p.opts[0], dataset]
        elif p.name == "backbone":
            argv += [p.opts[0], backbone]
        else:
            argv += [p.opts[0], str(tmp / f"no-such-{p.name}")]
    return argv

"""The `embedstore` command: one Typer app combining one module per command group.

Start-up time is part of the interface (`embedstore --help`, `--version`, `ls`, `info` and
`backbones` answer in well under a second): nothing here imports a command module, and importing
one imports no heavy library. How to add or change a command group:

1. Write ``embedstore/cli/<group>_cmds.py`` with a ``register(app)`` that adds its commands
   (``app.command("name")(function)``, or ``app.add_typer(sub_app, name="group")`` for a group
   of subcommands), as the modules listed in ``COMMANDS`` do.
2. Add one line per command to ``COMMANDS`` below: the command name, its module, and the first
   line of its docstring (``embedstore --help`` lists that line without importing the module;
   ``tests/cli/test_main_cli.py`` checks that the two agree and that every module imports fast).
3. At the top of a command module import only typer, rich, ``embedstore.cli._common`` and light parts of the
   library (``embedstore.errors``, ``embedstore._version``). Import what does the work — the store
   (zarr), backbones and extraction (torch, timm), probes (scikit-learn, faiss), plotting
   (matplotlib) — inside the command function, where it is used::

       def probe(store: StoreArg, ...) -> None:
           from embedstore.engine.probe import evaluate_probes  # heavy: torch, faiss

   ``embedstore/__init__.py`` follows the same rule with PEP 562 lazy names, so
   ``from embedstore import open_store`` is cheap until ``open_store`` is used.
4. Shared option types (``-d/--dataset``, ``-b/--backbone``, ``--fuse``, ``--device``, ``--json``,
   ``--out``) live in ``embedstore/cli/_common.py``: reuse them so every command spells an option the same.

``python benchmarks/bench_startup.py`` prints the start-up times against ``python -c pass``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Annotated, Any

import click
import typer
from typer.core import TyperCommand, TyperGroup

from embedstore._version import __version__

# name -> (module defining it, the first line of its docstring), in the order `--help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "ls": (
        "embedstore.cli.store_cmds",
        "List every dataset and backbone array in a store: shape, dtype, size, completeness.",
    ),
    "info": (
        "embedstore.cli.store_cmds",
        "Describe a store, one dataset (classes, splits, backbones), or one array (provenance).",
    ),
    "backbones": (
        "embedstore.cli.backbones_cmds",
        "List the registered backbones: architecture, dim, preprocessing, recipe, licence, "
        "gating, published hash, whether weights are local. Any timm model is also usable as "
        "timm/<name>.",
    ),
    "extract": (
        "embedstore.cli.extract_cmds",
        "Extract embeddings of each backbone over SOURCE into STORE (resumable; rerun to "
        "continue).",
    ),
    "probe": (
        "embedstore.cli.probe_cmds",
        "Few-shot, nearest-prototype, kNN, logistic and DVME probes on stored embeddings.",
    ),
    "sweep": (
        "embedstore.cli.sweep_cmds",
        "Label-efficiency sweep: each backbone and fusion at label fractions or shots, over seeds.",
    ),
    "study": (
        "embedstore.cli.study_cmds",
        "Studies: many datasets × backbones × protocols as one resumable plan.",
    ),
    "protocols": (
        "embedstore.cli.protocols_cmds",
        "List the protocol presets (--protocol NAME of probe and sweep) with their source papers.",
    ),
    "report": (
        "embedstore.cli.report_cmds",
        "Tables for a paper from result records: mean ± spread per feature set × setting, n shown.",
    ),
    "analyze": (
        "embedstore.cli.analyze_cmds",
        "What features encode: backbone similarity (CKA), invariance, occlusion saliency.",
    ),
    "audit": (
        "embedstore.cli.audit_cmds",
        "Audit a dataset from its embeddings: duplicates, patients in two splits, label errors, "
        "shortcuts.",
    ),
    "export": (
        "embedstore.cli.archive_cmds",
        "Write datasets and complete backbone arrays into one checksummed archive file.",
    ),
    "verify": (
        "embedstore.cli.archive_cmds",
        "Recompute checksums and check the layout of every array; exit 1 on any problem.",
    ),
    "import": (
        "embedstore.cli.archive_cmds",
        "Verify an archive, then add its datasets and backbones to a local store.",
    ),
    "add": (
        "embedstore.cli.add_cmds",
        "Import embeddings computed elsewhere into a dataset, rows matched by sample id.",
    ),
    "export-features": (
        "embedstore.cli.add_cmds",
        "Write ids, labels, splits, groups and embeddings as Parquet, .npz or HDF5 for other tools.",
    ),
    "merge": (
        "embedstore.cli.archive_cmds",
        "Combine two stores whose common datasets agree (ids, labels, splits) into a new store.",
    ),
}


class LazyGroup(TyperGroup):
    """A Typer group whose commands are imported when they run (or show their own --help).

    The root ``--help`` lists the names and one-line helps of ``COMMANDS`` without importing
    their modules.
    """

    _listing = False

    # ctx is typed Any: typer >= 0.26 passes its vendored click's Context, not typer.Context
    def list_commands(self, ctx: Any) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module, short_help = COMMANDS[cmd_name]
        if self._listing:  # the root --help: a stand-in that only carries the help line
            return TyperCommand(cmd_name, help=short_help)
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        for name, command in typer.main.get_group(sub).commands.items():
            _no_flag_metavar(command, ctx)
            self.commands[name] = command
        return self.commands.get(cmd_name)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors_on_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_on_one_line():  # a command's own options are parsed in here
            return super().invoke(ctx)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _no_flag_metavar(self, ctx)
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _usage_error_classes() -> tuple[type[Exception], ...]:
    """click's UsageError, and typer's own copy where typer vendors click (typer >= 0.26)."""
    classes = {click.UsageError}
    try:
        classes.add(importlib.import_module("typer._click.exceptions").UsageError)
    except ImportError:
        pass
    return tuple(classes)


_USAGE_ERRORS = _usage_error_classes()


@contextlib.contextmanager
def _usage_errors_on_one_line() -> Iterator[None]:
    """A usage mistake (a missing or unknown option, a bad value) as one line on stderr, exit 1,
    like every other mistake (embedstore.cli._common.user_errors); `--help` and a bare group still show
    their help."""
    try:
        yield
    except _USAGE_ERRORS as caught:
        exc: Any = caught  # click's UsageError (or typer's vendored copy): ctx, format_message
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        message = exc.format_message().rstrip(".")
        typer.echo(f"error: {message}{where}", err=True)
        raise typer.Exit(1) from None


def _no_flag_metavar(command: Any, ctx: Any) -> None:
    """Show flags as `--json`, not `--json <bool>` (typer's rich help prints a type for them)."""
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():  # a group's own subcommands
        _no_flag_metavar(sub, ctx)


app = typer.Typer(
    name="embedstore",
    cls=LazyGroup,
    help="Extract backbone embeddings once into Zarr; probe, sweep and fuse them in seconds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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

"""What every command shares: the two rich consoles and turning library errors into exit 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from embedstore.errors import EmbedstoreError, InvalidDataError

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
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help="cpu, cuda, cuda:N, or auto (cuda when torch sees a GPU, else cpu)."
    ),
]
FuseOpt = Annotated[
    list[str] | None,
    typer.Option("--fuse", help="Comma-separated backbones to fuse, e.g. dino,swav (repeatable)."),
]

NormalizeOpt = Annotated[
    str, typer.Option(help="Per-backbone normalisation: l2, standard or none.")
]
GridOpt = Annotated[
    str, typer.Option(help="Logistic grid: ericsson (C=1/wd) or dinov2 (C directly).")
]
ProtocolOpt = Annotated[
    str | None,
    typer.Option(
        "--protocol",
        help="A published protocol preset (methods, settings, selection): see "
        "`embedstore protocols`.",
    ),
]
PredictionsOpt = Annotated[
    bool,
    typer.Option(
        "--predictions",
        help="Keep every record's per-image test predictions (Parquet, one file per record) in "
        "the folder beside the results file (results.jsonl -> results.predictions/), for paired "
        "tests and `embedstore report`.",
    ),
]
ClassWeightOpt = Annotated[
    str,
    typer.Option(
        "--class-weight",
        help="none, or balanced: weight each class by n / (classes x n_c) (logreg, svm: "
        "scikit-learn's loss weights; knn: votes).",
    ),
]


def not_computed_line(r) -> str:
    """One line naming a cell that could not be computed (feature set, method, setting, seed)."""
    setting = ", ".join(f"{k} {v}" for k, v in r.labels.items() if k in ("fraction", "shots"))
    return (
        f"[yellow]not computed:[/] {r.method} on {r.feature_name} ({r.dataset}, "
        f"{setting or 'all labels'}, seed {r.seed}): {r.reason}"
    )


def computed_only(records: list) -> list:
    """The records that hold numbers; each cell that could not be computed is said in one line
    (the tables, comparisons and plots are of the others)."""
    for r in records:
        if r.status == "not computed":
            err_console.print(not_computed_line(r), highlight=False, soft_wrap=True)
    return [r for r in records if r.status == "computed"]


def method_help(*, sweep: bool = False) -> str:
    """The method names of the registry (those that train on label subsets with ``sweep``)."""
    from embedstore.probes.method import method_names

    return ", ".join(method_names(sweep=sweep))


def feature_sets(backbone: list[str] | None, fuse: list[str] | None) -> list[list[str]]:
    """`-b a -b b --fuse a,b` -> [["a"], ["b"], ["a", "b"]]."""
    from embedstore.probes.features import parse_fuse

    return [[b] for b in backbone or []] + [list(parse_fuse(f)) for f in fuse or []]


def check_choice(value: str, allowed: Iterable[str], option: str) -> str:
    """`value` if it is one of `allowed`, else InvalidDataError naming the option and the values."""
    allowed = list(allowed)
    if value not in allowed:
        raise InvalidDataError(f"{option} must be one of {', '.join(allowed)}; got '{value}'")
    return value


def same_value(positional: str | None, option: str | None, arg_name: str, opt_name: str):
    """The value given as an argument or as an option (both allowed, e.g. `info S d` = `-d d`)."""
    if positional is not None and option is not None and positional != option:
        raise InvalidDataError(
            f"{arg_name} '{positional}' and {opt_name} '{option}' disagree; give one of them"
        )
    return positional if positional is not None else option


WeightsOpt = Annotated[
    list[str] | None,
    typer.Option("--weights", help="NAME=PATH: a local checkpoint for backbone NAME."),
]


def parse_weights(items: list[str]) -> dict[str, str]:
    """`--weights NAME=PATH` items -> {NAME: PATH} (extract and analyze)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InvalidDataError(
                f"--weights expects NAME=PATH (e.g. resnet50.dino=./dino_resnet50.pth), "
                f"got '{item}'"
            )
        out[name] = path
    return out


def progress_bar(label: str, disable: bool):
    """The bar of a long command on stderr: its label, bar, done/total, time, current step; gone
    when done (rich is imported here, not when the CLI starts)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
        disable=disable,
    )

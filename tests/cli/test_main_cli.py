"""The command table of embedstore/cli/main.py: lazy loading, help lines, and what start-up imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from embedstore.cli.main import COMMANDS, LazyGroup, app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
# Libraries that take seconds to import; none may load before a command needs it.
HEAVY = ("torch", "torchvision", "timm", "sklearn", "scipy", "faiss", "matplotlib", "PIL")


def _imported_after(code: str) -> set[str]:
    """Top-level module names imported by running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def test_root_help_and_version_import_no_library():
    loaded = _imported_after(
        "from typer.testing import CliRunner\n"
        "from embedstore.cli.main import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0 and 'backbones' in r.output, r.output\n"
        "r = CliRunner().invoke(app, ['--version'])\n"
        "assert r.exit_code == 0 and 'embedstore' in r.output, r.output"
    )
    assert not loaded & {*HEAVY, "zarr", "numpy"}, loaded & {*HEAVY, "zarr", "numpy"}


@pytest.mark.parametrize(
    "module",
    [
        "embedstore.cli.store_cmds",
        "embedstore.cli.extract_cmds",
        "embedstore.cli.probe_cmds",
        "embedstore.cli.sweep_cmds",
        "embedstore.cli.analyze_cmds",
        "embedstore.cli.protocols_cmds",
        "embedstore.cli.backbones_cmds",
    ],
)
def test_command_modules_import_no_heavy_library(module):
    loaded = _imported_after(f"import {module}")
    assert not loaded & set(HEAVY), (module, loaded & set(HEAVY))


def test_listing_the_backbones_imports_no_torch():
    # The whole command, table and JSON: every built-in entry states its listed facts as data.
    loaded = _imported_after(
        "import json\n"
        "from typer.testing import CliRunner\n"
        "from embedstore.cli.main import app\n"
        "r = CliRunner().invoke(app, ['backbones'])\n"
        "assert r.exit_code == 0 and 'vit_small_patch16.dino_last4' in r.output, r.output\n"
        "r = CliRunner().invoke(app, ['backbones', '--json'])\n"
        "rows = {row['name']: row for row in json.loads(r.output)}\n"
        "assert rows['vit_base_patch16.dino_last4']['dim'] == 3072, rows\n"
        "assert rows['xcit_small_12_p8.sparsam_bm']['dim'] == 384, rows"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_import_embedstore_is_light_and_extract_stays_callable():
    loaded = _imported_after(
        "import embedstore\n"
        "assert 'open_store' in dir(embedstore)\n"
        "import embedstore.extraction as mod\n"  # a subpackage import shadows no public name
        "assert callable(embedstore.extract) and embedstore.extract is mod.extract\n"
        "assert mod.ExtractProgress"
    )
    assert not loaded & {"torch", "timm"}, loaded  # torch loads once extract() has checked
    light = _imported_after("import embedstore")
    assert not light & {*HEAVY, "zarr", "numpy"}, light & {*HEAVY, "zarr", "numpy"}


def test_embedstore_extract_calls_the_function(tmp_path):
    import embedstore
    from embedstore.errors import UnknownBackboneError

    args = dict(dataset="d", source="demo", backbones=["no-such-backbone"])
    for call in (embedstore.extract, embedstore.extraction.extract):
        with pytest.raises(UnknownBackboneError, match="no-such-backbone"):
            call(tmp_path / "s.zarr", **args)
    assert not (tmp_path / "s.zarr").exists()


def test_help_lines_are_the_commands_own():
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    ctx = typer.Context(group)
    for name, (_module, line) in COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name, name
        assert _first_paragraph(command.help) == line, name


def test_every_registered_command_is_listed():
    modules = {module for module, _ in COMMANDS.values()}
    found = {}
    for module in modules:
        sub = typer.Typer()
        __import__(module, fromlist=["register"]).register(sub)
        found.update({c.name: module for c in sub.registered_commands})
        found.update({g.name: module for g in sub.registered_groups})
    assert found == {name: module for name, (module, _) in COMMANDS.items()}


def test_every_command_has_help_without_bool_metavars():
    root = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert root.exit_code == 0
    assert "<bool>" not in root.output
    for name, (_, line) in COMMANDS.items():
        assert name in root.output and line[:40] in root.output, name
        sub = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert sub.exit_code == 0, name
        assert "Usage" in sub.output and "<bool>" not in sub.output, (name, sub.output)
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    for name in COMMANDS:  # groups of subcommands (embedstore analyze similarity ...)
        for sub_name in getattr(group.get_command(ctx, name), "commands", {}):
            sub = runner.invoke(app, [name, sub_name, "--help"], env={"COLUMNS": "200"})
            assert sub.exit_code == 0 and "<bool>" not in sub.output, (name, sub_name)


def test_unknown_command_exits_1_in_one_line():
    result = runner.invoke(app, ["lss"])
    assert result.exit_code == 1 and "No such command" in result.output
    assert len(result.output.strip().splitlines()) == 1

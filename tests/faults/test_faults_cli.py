"""Every CLI command, walked with bad values: one line, exit 1, never a traceback.

The walk is generated from the commands themselves (embedstore.testing.commands, from
embedstore.cli.main.COMMANDS and each command's parameters), so a command added later is walked
too: its required arguments get bad stores (missing, a text file, an empty folder, a damaged store,
a good store with an unknown dataset or backbone), and each of its value options gets a bad value
(negative numbers, an unknown word) on a good store.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.testing.commands import COMMAND_LIST, Command, fill
from embedstore.testing.damage import damaged_copy, damages
from tests.conftest import make_dataset, write_embeddings


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    good = create_store(tmp / "good.zarr")
    make_dataset(good, n=40)
    X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    write_embeddings(good, "toy", "bb", X, chunk_rows=16)
    w = good.writer("toy", "bb", dim=8, chunk_rows=16, overwrite=True)
    w.write(X)
    w.mark_missing(3, "img_0003.png", "truncated file")
    w.finish({"name": "bb"})
    damaged = tmp / "damaged.zarr"
    shutil.copytree(tmp / "good.zarr", damaged)
    (damaged / "toy" / "bb" / "embeddings" / "zarr.json").unlink()
    (tmp / "notes.txt").write_text("not a store\n")
    (tmp / "empty").mkdir()
    return {
        "missing": tmp / "no-such-store.zarr",
        "text file": tmp / "notes.txt",
        "empty folder": tmp / "empty",
        "damaged": damaged,
        "good": tmp / "good.zarr",
    }


def _one_line(result) -> list[str]:
    return [line for line in result.output.strip().splitlines() if line.strip()]


def _takes_names(path: list[str], cmd: Command) -> bool:
    """Whether a command can be given an unknown dataset or backbone name (or, for import, merge
    and export, another wrong target that the walk below builds)."""
    return path in (["import"], ["merge"], ["export"]) or any(
        p.name in ("dataset", "backbone") for p in cmd.params
    )


# Only the cases that apply: a command without required arguments has no bad store to be given,
# and one that takes no dataset or backbone name cannot be given an unknown one.
BAD_CASES = [
    (path, cmd, bad)
    for path, cmd in COMMAND_LIST
    if any(p.required for p in cmd.params)
    for bad in ("missing", "text file", "empty folder", "damaged", "unknown names")
    if bad != "unknown names" or _takes_names(path, cmd)
]


@pytest.mark.parametrize(
    "path,cmd,bad", BAD_CASES, ids=[f"{' '.join(p)}-{b}" for p, _, b in BAD_CASES]
)
def test_required_arguments_with_bad_values(stores, tmp_path, path, cmd, bad):
    store = stores["good" if bad == "unknown names" else bad]
    names = ("nope", "nope.bb") if bad == "unknown names" else ("toy", "bb")
    argv = path + fill(cmd, store, tmp_path, *names)
    if path == ["info"]:
        argv += list(names)  # down to the array: the damaged one, or unknown names
    if bad == "unknown names":
        if path == ["import"]:
            argv = path + [str(stores["good"]), str(stores["text file"])]  # a file as target
        elif path == ["merge"]:
            argv = path + [str(stores["good"]), str(stores["good"]), str(stores["good"])]
        elif path == ["export"]:
            argv += ["-d", "nope"]
    result = CliRunner().invoke(app, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    if path == ["ls"] and bad == "damaged":  # ls lists the store and marks the damage
        assert result.exit_code == 0 and "damaged" in result.output, result.output
        return
    assert result.exit_code == 1, (argv, result.output)
    if path == ["verify"]:  # a report: its table, then one error line
        assert sum(line.startswith("error:") for line in _one_line(result)) == 1, result.output
        return
    lines = _one_line(result)
    assert len(lines) == 1 and lines[0].startswith("error:"), (argv, result.output)


def _value_options(cmd: Command) -> list[Command]:
    return [
        p
        for p in cmd.params
        if p.param_type_name == "option" and not p.is_flag and not p.required and p.name != "help"
    ]


_WALKED = [
    (path, cmd, opt)
    for path, cmd in COMMAND_LIST
    if path[0] in ("ls", "info", "probe", "sweep", "export", "verify", "import", "merge")
    for opt in _value_options(cmd)
]


@pytest.mark.parametrize(
    "path,cmd,opt", _WALKED, ids=[f"{' '.join(p)} {o.opts[0]}" for p, _, o in _WALKED]
)
def test_value_options_with_bad_values(stores, tmp_path, monkeypatch, path, cmd, opt):
    """A negative number or an unknown word for each option: a result or one line, exit 1."""
    monkeypatch.chdir(tmp_path)  # an option naming an output file writes here
    base = path + fill(cmd, stores["good"], tmp_path, "toy", "bb")
    if opt.name != "backbone" and any(p.name == "backbone" and not p.required for p in cmd.params):
        base += ["-b", "bb"]  # something to evaluate, so that the option under test is used
    for value in ("-7", "bogus"):
        result = CliRunner().invoke(app, [*base, opt.opts[0], value])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            opt.opts[0],
            value,
            result.output,
        )
        assert "Traceback" not in result.output
        assert result.exit_code in (0, 1, 2), result.output
        if result.exit_code == 1:
            lines = _one_line(result)
            assert len(lines) == 1 and lines[0].startswith("error:"), (
                opt.opts,
                value,
                result.output,
            )


def test_info_lists_missing_rows_with_ids_and_reasons(stores):
    result = CliRunner().invoke(app, ["info", str(stores["good"]), "toy", "bb"])
    assert result.exit_code == 0, result.output
    assert "missing rows (1)" in result.output
    row = next(line for line in result.output.splitlines() if "img_0003.png" in line)
    assert "truncated file" in row and " 3 " in row
    result = CliRunner().invoke(app, ["info", str(stores["good"]), "toy", "bb", "--json"])
    payload = json.loads(result.output)
    assert payload["missing"] == [{"row": 3, "id": "img_0003.png", "reason": "truncated file"}]


_DAMAGES = damages()
_STORE_COMMANDS = [(p, c) for p, c in COMMAND_LIST if any(x.required for x in c.params)
                   and p != ["report"]]  # fmt: skip


@pytest.mark.parametrize("kind,damage,apply", _DAMAGES, ids=[f"{k}-{d}" for k, d, _ in _DAMAGES])
def test_every_command_on_damaged_metadata_of_every_node_kind(
    stores, tmp_path, kind, damage, apply
):
    """Each node kind's zarr.json not JSON, empty, or with a field of the wrong type: every
    command answers with a result or one line (exit 1), never a traceback."""
    store = damaged_copy(stores["good"], tmp_path / "d.zarr", apply)
    for path, cmd in _STORE_COMMANDS:
        argv = path + fill(cmd, store, tmp_path / "out", "toy", "bb")
        if path in (["probe"], ["sweep"]) or path[0] == "analyze":
            argv += ["-b", "bb"]
        if path == ["info"]:
            argv += ["toy", "bb"]
        result = CliRunner().invoke(app, argv)
        where = (kind, damage, argv, result.output[-600:])
        assert result.exception is None or isinstance(result.exception, SystemExit), where
        assert "Traceback" not in result.output and result.exit_code in (0, 1), where
        if result.exit_code == 1 and path != ["verify"]:
            assert len(_one_line(result)) == 1, where
    report = CliRunner().invoke(app, ["verify", str(store)])
    assert report.exit_code == 1, (kind, damage, report.output)  # verify names every damage


_ALL = damages("wide.test")  # embedstore.testing.harness.BACKBONE
_EXTRACT_DAMAGES = [d for d in _ALL if d[1] in ("not JSON", "empty")] + [
    next(d for d in _ALL if d[0] == kind and d[1] not in ("not JSON", "empty"))
    for kind in dict.fromkeys(k for k, _, _ in _ALL)
]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """A store extracted by the CLI with the fault tests' backbone, and its images; the test
    backbones are unregistered afterwards (later modules list the registry)."""
    from embedstore.backbones import unregister
    from embedstore.errors import EmbedstoreError
    from embedstore.testing.fault_cli import HUGE, WIDE, register_test_backbones
    from embedstore.testing.harness import BACKBONE, write_images

    try:
        register_test_backbones()
        registered = True
    except EmbedstoreError:
        registered = False  # registered by another test module of this session
    tmp = tmp_path_factory.mktemp("extract")
    images = write_images(tmp / "images", 12)
    argv = ["extract", str(tmp / "s.zarr"), "-d", "toy", "--source", str(images), "-b", BACKBONE,
            "--batch-size", "4", "--workers", "0", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    yield tmp / "s.zarr", images
    if registered:
        for name in (WIDE, HUGE):
            unregister(name)


@pytest.mark.parametrize(
    "kind,damage,apply", _EXTRACT_DAMAGES, ids=[f"{k}-{d}" for k, d, _ in _EXTRACT_DAMAGES]
)
def test_extract_into_a_store_with_damaged_metadata(extracted, tmp_path, kind, damage, apply):
    """Extract again into the damaged store (with and without --overwrite) and into a new
    dataset of it: a result or one line, never a traceback."""
    from embedstore.testing.harness import BACKBONE

    good, images = extracted
    for extra in ([], ["--overwrite"], ["-d", "other"]):
        store = damaged_copy(good, tmp_path / f"d{len(extra)}{extra[:1]}.zarr", apply)
        argv = ["extract", str(store), "-d", "toy", "--source", str(images), "-b", BACKBONE,
                "--batch-size", "4", "--workers", "0", "--device", "cpu", *extra]  # fmt: skip
        result = CliRunner().invoke(app, argv)
        where = (kind, damage, extra, result.output[-800:])
        assert result.exception is None or isinstance(result.exception, SystemExit), where
        assert "Traceback" not in result.output and result.exit_code in (0, 1), where
        if result.exit_code == 1:
            assert len(_one_line(result)) == 1 and "damaged" in result.output, where

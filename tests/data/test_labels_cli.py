"""Labels and sources through the real `embedstore` process (this checkout, tiny backbones): one
large integer label gives one class named by its value, in seconds; every bad label, bad CSV and
empty class folder is one line, exit 1, no traceback, and leaves an existing store byte-identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedstore.extraction import extract
from tests.data.conftest import TINY as IN_PROCESS
from tests.data.conftest import save_png
from tests.extraction.helpers import ROOT, TINY

pytestmark = pytest.mark.slow  # runs the CLI in real processes


def _processes(commands: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Run ``python -m tests.extraction.helpers ARGS`` for each entry at once (one torch thread
    each): name -> (exit code, stdout and stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tests.extraction.helpers", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name, args in commands.items()
    }
    out = {}
    for name, proc in running.items():
        text, _ = proc.communicate(timeout=300)
        out[name] = (proc.returncode, text.decode())
    return out


def _extract_args(store: Path, source: Path) -> list[str]:
    return ["extract", str(store), "-d", "ds", "--source", str(source), "-b", TINY,
            "--workers", "0", "--device", "cpu"]  # fmt: skip


def _images(root: Path, n: int) -> list[str]:
    for i in range(n):
        save_png(root / "img" / f"{i}.png", 20 * i)
    return [f"img/{i}.png" for i in range(n)]


def _snapshot(store: Path) -> dict[str, bytes]:
    return {
        p.relative_to(store).as_posix(): p.read_bytes() for p in store.rglob("*") if p.is_file()
    }


def test_one_large_label_gives_three_named_classes_in_seconds(tmp_path):
    paths = _images(tmp_path, 6)
    labels = [0, 1, 0, 1, 10000000, 10000000]
    csv = tmp_path / "big.csv"
    csv.write_text(
        "path,label\n" + "".join(f"{p},{v}\n" for p, v in zip(paths, labels, strict=True))
    )
    store = tmp_path / "s.zarr"
    rc, out = _processes({"x": _extract_args(store, csv)})["x"]
    assert rc == 0, out
    shown = _processes(
        {"t": ["info", str(store), "-d", "ds"], "j": ["info", str(store), "-d", "ds", "--json"]}
    )
    assert shown["t"][0] == 0 and "0, 1, 10000000" in shown["t"][1], shown["t"][1]
    info = json.loads(shown["j"][1])
    assert info["class_names"] == ["0", "1", "10000000"] and info["n_samples"] == 6
    assert "labels: the 3 distinct integer labels, ascending, are classes 0..2" in info["source"]
    size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    assert size < 200_000  # not 10,000,001 class names


def _bad_sources(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (source, what its one error line must say)."""
    paths = _images(tmp_path, 4)
    out: dict[str, tuple[Path, str]] = {}

    def csv(name: str, text: str | bytes) -> Path:
        path = tmp_path / f"{name}.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def labelled(*values: str) -> str:
        return "path,label\n" + "".join(f"{p},{v}\n" for p, v in zip(paths, values, strict=False))

    for name, values, said in [
        ("nan", "0,1,nan,1", "label 'nan' in column 'label' on line 4 is not a class"),
        (
            "inf",
            "0,inf,-inf,1",
            "labels 'inf', '-inf' in column 'label' on lines 3, 4 are not classes",
        ),
        ("empty", "0,1,,1", "empty label in column 'label' on line 4"),
        ("text", "0,1,abc,1", "label 'abc' in column 'label' on line 4 does not match the other"),
    ]:
        out[name] = (csv(name, labelled(*values.split(","))), said)
    out["extra field"] = (
        csv("extra", labelled("0", "1", "0", "1").replace(",0\n", ",0,surplus\n", 1)),
        "line 2 has 3 fields but the header has 2",
    )
    out["latin-1"] = (
        csv("latin", "path,label\nimg/é.png,1\n".encode("latin-1")),
        "is not UTF-8 text",
    )
    out["binary"] = (csv("binary", bytes(range(256)) * 4), "is not UTF-8 text")
    folder = tmp_path / "folder"
    for c in ("benign", "malignant"):
        for i in range(2):
            save_png(folder / c / f"{i}.png", 40 * i + 7)
    (folder / "empty").mkdir()
    out["empty folder"] = (folder, "class folder(s) ['empty'] hold no image files")
    return out


def test_bad_labels_csvs_and_folders_are_one_line_and_leave_the_store_as_it_was(tmp_path):
    paths = _images(tmp_path, 6)
    good = tmp_path / "good.csv"
    good.write_text("path,label\n" + "".join(f"{p},{i % 2}\n" for i, p in enumerate(paths)))
    store = tmp_path / "s.zarr"
    extract(store, dataset="ds", source=str(good), backbones=[IN_PROCESS], workers=0, device="cpu")
    before = _snapshot(store)
    cases = _bad_sources(tmp_path)
    commands = {name: _extract_args(store, src) for name, (src, _) in cases.items()}
    commands["nan, new store"] = _extract_args(tmp_path / "new.zarr", cases["nan"][0])
    cases["nan, new store"] = cases["nan"]
    for name, (rc, out) in _processes(commands).items():
        lines = out.strip().splitlines()
        assert rc == 1, (name, out)
        assert "Traceback" not in out and len(lines) == 1, (name, out)
        assert lines[0].startswith("error:") and cases[name][1] in lines[0], (name, out)
    assert not (tmp_path / "new.zarr").exists()  # nothing created for a refused source
    assert _snapshot(store) == before

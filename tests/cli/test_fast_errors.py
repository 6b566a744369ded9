"""A mistake is answered before torch or timm is imported (issue 23, item 2).

Each command runs in a fresh interpreter whose first path entry holds a ``torch`` and a ``timm``
that raise on import: a check that imports either before answering fails with "torch imported"
instead of the one-line error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedstore import create_store

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # starts a Python process per case


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A fake torch/timm, an image folder, one with an empty class, a CSV without 'path', and a
    store with one dataset and one backbone."""
    tmp = tmp_path_factory.mktemp("fast")
    for name in ("torch", "timm"):
        (tmp / "fake" / name).mkdir(parents=True)
        (tmp / "fake" / name / "__init__.py").write_text(f'raise ImportError("{name} imported")\n')
    for folder, counts in (("imgs", {"a": 3, "b": 3}), ("empty_class", {"a": 2, "b": 0})):
        for cls, n in counts.items():
            (tmp / folder / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp / folder / cls / f"{i}.png")
    for i in range(1, 12):  # class 'b' of one image: train 1, val 0, test 0
        (tmp / "small" / ("a" if i > 1 else "b")).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i, 0, 0)).save(
            tmp / "small" / ("a" if i > 1 else "b") / f"{i}.png"
        )
    (tmp / "no_path.csv").write_text("file,label\nimgs/a/0.png,a\nimgs/b/0.png,b\n")
    store = create_store(tmp / "s.zarr")
    n = 12
    store.add_dataset(
        "d", ids=[f"s{i}" for i in range(n)], labels=np.arange(n) % 2, split=np.arange(n) % 3,
        task="binary", class_names=["a", "b"],
    )  # fmt: skip
    w = store.writer("d", "bb", dim=4)
    w.write(np.zeros((n, 4), np.float32))
    w.finish({"name": "bb"})
    (tmp / "study.toml").write_text(
        '[[datasets]]\nstore = "s.zarr"\ndataset = "d"\n[features]\nbackbones = ["bx"]\n'
        '[[protocols]]\nmethods = ["knn"]\nfractions = [0.5]\n'
    )
    return tmp


def _run(world: Path, *args: str, env: dict[str, str] | None = None):
    path = os.pathsep.join([str(world / "fake"), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "embedstore.cli.main", *args],
        env={**os.environ, "PYTHONPATH": path, "CUDA_VISIBLE_DEVICES": "", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


CASES = {
    "backbone typo": (
        ["extract", "{s}", "-d", "x", "--source", "{imgs}", "-b", "resnet50.dion"],
        "did you mean 'resnet50.dino'",
    ),
    "missing --source": (["extract", "{s}", "-d", "x", "-b", "resnet50.dino"], "--source"),
    "empty class folder": (
        ["extract", "{s}", "-d", "x", "--source", "{empty}", "-b", "resnet50.dino"],
        "hold no image files",
    ),
    "CSV without its path column": (
        ["extract", "{s}", "-d", "x", "--source", "{csv}", "-b", "resnet50.dino"],
        "--path-column",
    ),
    "--device cuda without a GPU": (
        [
            "extract",
            "{s}",
            "-d",
            "x",
            "--source",
            "{imgs}",
            "-b",
            "resnet50.dino",
            "--device",
            "cuda",
        ],  # fmt: skip
        "no CUDA GPU",
    ),
    "missing --weights file": (
        [
            "extract",
            "{s}",
            "-d",
            "x",
            "--source",
            "{imgs}",
            "-b",
            "resnet50.dino",
            "--weights",
            "resnet50.dino={imgs}/nothing.pth",
        ],  # fmt: skip
        "no such file",
    ),
    "analyze invariance: backbone typo": (
        ["analyze", "invariance", "{s}", "-d", "d", "-b", "bx"],
        "'bx' has not been extracted",
    ),
    "analyze saliency: --device cuda": (
        ["analyze", "saliency", "{s}", "-d", "d", "--device", "cuda"],
        "no CUDA GPU",
    ),
    "probe: backbone typo": (["probe", "{s}", "-d", "d", "-b", "bx"], "'bx' is not an array"),
    "probe: infeasible few-shot": (
        ["probe", "{s}", "-d", "d", "-b", "bb", "-m", "logreg,fewshot"],
        "--shots",
    ),
    "sweep: bad fraction": (
        ["sweep", "{s}", "-d", "d", "-b", "bb", "--fractions", "2"],
        "label fractions must be in (0, 1]",
    ),
    "sweep: --grid typo": (
        ["sweep", "{s}", "-d", "d", "-b", "bb", "--fractions", "0.5", "--grid", "dinov3"],
        "ericsson, dinov2",
    ),
    "study: a backbone typo": (["study", "run", "{study}"], "'bx' is not an array"),
    "an unknown command": (["extrct"], "No such command"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_is_answered_in_one_line_without_torch(world, case):
    argv, expected = CASES[case]
    places = {
        "s": str(world / "s.zarr"),
        "imgs": str(world / "imgs"),
        "empty": str(world / "empty_class"),
        "csv": str(world / "no_path.csv"),
        "study": str(world / "study.toml"),
    }
    result = _run(world, *[a.format(**places) for a in argv])
    assert "imported" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert not (world / "s.zarr" / "x").exists()  # nothing stored


def test_the_fake_torch_is_what_a_real_run_would_meet(world):
    """The harness itself: a command that needs torch does fail with it on the path."""
    result = _run(world, "extract", str(world / "t.zarr"), "-d", "x", "--source",
                  str(world / "imgs"), "-b", "resnet50.dino")  # fmt: skip
    assert result.returncode != 0 and "torch imported" in result.stderr


def test_a_class_too_small_for_the_splits_is_told_before_the_models_load(world):
    """Class 'b' has one image: the stratified 70/10/20 split puts it in train, none in val or
    test; the warning says so before torch is imported (here: before the fake torch fails)."""
    result = _run(world, "extract", str(world / "t2.zarr"), "-d", "x", "--source",
                  str(world / "small"), "-b", "resnet50.dino")  # fmt: skip
    warning, rest = result.stderr.split("\n", 1)
    assert warning.startswith("warning: class 'b' (1 image): train 1, val 0, test 0"), warning
    assert "torch imported" in rest  # the warning came first

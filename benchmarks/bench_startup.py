"""Start-up time of `embedstore` commands against a bare `python -c pass`.

    python benchmarks/bench_startup.py [--repeat 5]

Each command runs in a fresh interpreter (as a user's shell runs it), the code of this checkout
(`python -m embedstore.cli.main`, PYTHONPATH = the repository root). Prints the best of --repeat wall-clock
times, each as a ratio to `python -c pass` and as the seconds on top of it, and the child's CPU
time (user + system; steadier than wall time on a busy machine). `import torch` alone is timed
for scale: every command paid at least that before imports were made lazy.

The second table times mistakes: a typo in each command's arguments (a backbone, a dataset, an
option, a path), answered with one line and exit 1 before torch or timm is imported.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best_of(
    argv: list[str], repeat: int, env: dict[str, str], expect: int = 0
) -> tuple[float, float]:
    """(best wall-clock s, best CPU s of the child: user + system) over `repeat` runs; the exit
    status must be `expect`."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True)
        if done.returncode != expect:
            raise SystemExit(f"{argv}: exit {done.returncode}, expected {expect}\n{done.stderr}")
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


def make_store(path: Path, env: dict[str, str]) -> None:
    """A small store (one dataset, one 64-d backbone) for `ls` and `info`."""
    code = (
        "import sys, numpy as np\n"
        "from embedstore import create_store\n"
        "s = create_store(sys.argv[1])\n"
        "n = 256\n"
        "s.add_dataset('d', ids=[f's{i}' for i in range(n)], labels=np.arange(n) % 2,\n"
        "              split=np.arange(n) % 3, task='binary', class_names=['a', 'b'])\n"
        "w = s.writer('d', 'bb', dim=64)\n"
        "w.write(np.zeros((n, 64), 'f4'))\n"
        "w.finish({'name': 'bb'})\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.zarr"
        make_store(store, env)
        cli = [py, "-m", "embedstore.cli.main"]
        cases = {
            "python -c pass": [py, "-c", "pass"],
            "embedstore --version": [*cli, "--version"],
            "embedstore --help": [*cli, "--help"],
            "embedstore ls STORE": [*cli, "ls", str(store)],
            "embedstore info STORE d": [*cli, "info", str(store), "d"],
            "embedstore backbones": [*cli, "backbones"],
            "embedstore probe --help": [*cli, "probe", "--help"],
            "embedstore sweep --help": [*cli, "sweep", "--help"],
            "embedstore extract --help": [*cli, "extract", "--help"],
            "python -c 'import torch'": [py, "-c", "import torch"],
        }
        _table(cases, args.repeat, env, expect=0)
        (Path(tmp) / "imgs" / "a").mkdir(parents=True)
        (Path(tmp) / "imgs" / "b").mkdir(parents=True)
        imgs = str(Path(tmp) / "imgs")
        (Path(tmp) / "imgs" / "a" / "x.png").write_bytes(b"")
        (Path(tmp) / "imgs" / "b" / "x.png").write_bytes(b"")
        s, out = str(store), str(Path(tmp) / "new.zarr")
        mistakes = {
            "python -c pass": [py, "-c", "pass"],
            "extract: backbone typo": [*cli, "extract", out, "-d", "x", "--source", imgs,
                                       "-b", "resnet50.dion"],
            "extract: --device cuda, no GPU": [*cli, "extract", out, "-d", "x", "--source",
                                               imgs, "-b", "resnet50.dino", "--device", "cuda"],
            "probe: backbone typo": [*cli, "probe", s, "-d", "d", "-b", "bx"],
            "sweep: backbone typo": [*cli, "sweep", s, "-d", "d", "-b", "bx"],
            "report: no such file": [*cli, "report", str(Path(tmp) / "none.jsonl")],
            "analyze similarity: typo": [*cli, "analyze", "similarity", s, "-d", "d", "-b",
                                         "bx"],
            "analyze invariance: typo": [*cli, "analyze", "invariance", s, "-d", "d", "-b",
                                         "bx"],
            "analyze saliency: typo": [*cli, "analyze", "saliency", s, "-d", "d", "-b", "bx"],
            "ls: no such store": [*cli, "ls", out],
            "info: dataset typo": [*cli, "info", s, "e"],
            "backbones: no such file": [*cli, "backbones", "--backbones-file", "none.toml"],
            "protocols: typo": [*cli, "protocols", "truon"],
            "export: dataset typo": [*cli, "export", s, str(Path(tmp) / "o.zip"), "-d", "e"],
            "verify: no such file": [*cli, "verify", str(Path(tmp) / "none.zip")],
            "import: no such file": [*cli, "import", str(Path(tmp) / "none.zip"), out],
            "merge: no such store": [*cli, "merge", s, out, str(Path(tmp) / "m.zarr")],
            "unknown option": [*cli, "extract", out, "--sorce", imgs],
        }  # fmt: skip
        print()
        _table(mistakes, args.repeat, env, expect=1)


def _table(cases: dict[str, list[str]], repeat: int, env: dict[str, str], expect: int) -> float:
    """Print one row per case (the first is the baseline); return the baseline's seconds."""
    base = None
    print(f"{'command':32s} {'wall s':>7s} {'× python':>9s} {'+ s':>7s} {'CPU s':>7s}")
    for name, argv in cases.items():
        t, cpu = best_of(argv, repeat, env, expect=0 if base is None else expect)
        base = t if base is None else base
        print(f"{name:32s} {t:7.3f} {t / base:8.1f}× {t - base:7.3f} {cpu:7.3f}")
    return base


if __name__ == "__main__":
    main()

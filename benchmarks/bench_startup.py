"""Start-up time of `embedstore` commands against a bare `python -c pass`.

    python benchmarks/bench_startup.py [--repeat 5]

Each command runs in a fresh interpreter (as a user's shell runs it), the code of this checkout
(`python -m cli.main`, PYTHONPATH = the repository root). Prints the best of --repeat wall-clock
times, each as a ratio to `python -c pass` and as the seconds on top of it, and the child's CPU
time (user + system; steadier than wall time on a busy machine). `import torch` alone is timed
for scale: every command paid at least that before imports were made lazy.
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


def best_of(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """(best wall-clock s, best CPU s of the child: user + system) over `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
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
        cli = [py, "-m", "cli.main"]
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
        base = None
        print(f"{'command':28s} {'wall s':>7s} {'× python':>9s} {'+ s':>7s} {'CPU s':>7s}")
        for name, argv in cases.items():
            t, cpu = best_of(argv, args.repeat, env)
            base = t if base is None else base
            print(f"{name:28s} {t:7.3f} {t / base:8.1f}× {t - base:7.3f} {cpu:7.3f}")


if __name__ == "__main__":
    main()

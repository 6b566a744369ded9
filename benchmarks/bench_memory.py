"""Peak memory of `probe`, `sweep` and `study` against the size of the float32 feature matrix.

Builds (once, in --work) a store per row count: one dataset of N × D float16 embeddings (5 classes,
60/20/20 split), then runs each command in its own process through the CLI and reads that
process's peak resident memory (``os.wait4``'s ``ru_maxrss``). The ratio peak RSS / (N × D × 4)
is the number to keep small and flat: it must not grow with N (no N × N buffers, no copies
per fold or per cell).

    python benchmarks/bench_memory.py                      # 20k and 60k rows, every command
    python benchmarks/bench_memory.py --rows 200000 --commands probe-knn,probe-logreg
    python benchmarks/bench_memory.py --code /path/to/an/older/checkout   # "before" figures

--code runs another checkout's code on the same stores (its repository root goes first on
PYTHONPATH), so before/after figures come from one machine and one data set.

``study`` runs the ``sweep`` settings as a study over two datasets (this row count's store and
the small baseline store): a study holds one (dataset, feature set) at a time, so its peak must
equal the sweep's on the larger store, not the sum over datasets.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASE_ROWS = 2000  # a store this small measures the imports (torch, zarr, ...): the baseline

COMMANDS = {
    "probe-logreg": ["probe", "--method", "logreg"],
    "probe-knn": ["probe", "--method", "knn"],
    "sweep": [
        "sweep",
        "--methods",
        "knn,logreg",
        "--fractions",
        "0.1,1.0",
        "--seeds",
        "2",
    ],
    "study": [],  # the sweep's settings as a study over two datasets (see _study_file)
}


def make_store(path: Path, n: int, dim: int, classes: int = 5) -> None:
    """N × dim float16 embeddings with class structure, written in blocks (little memory)."""
    from embedstore import create_store

    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    split = np.repeat([0, 1, 2], [n * 6 // 10, n * 2 // 10, n - n * 8 // 10]).astype(np.uint8)
    store = create_store(path)
    store.add_dataset(
        "d",
        ids=[f"s{i}" for i in range(n)],
        labels=y,
        split=rng.permutation(split),
        task="multiclass",
        class_names=[f"c{i}" for i in range(classes)],
    )
    means = rng.normal(size=(classes, dim)).astype(np.float32) / np.sqrt(dim) * 6
    w = store.writer("d", "bb", dim=dim, dtype="float16")
    for s in range(0, n, 8192):
        block = means[y[s : s + 8192]] + rng.normal(size=(len(y[s : s + 8192]), dim))
        w.write(block.astype(np.float32))
    w.finish({"name": "bb"})


def build(path: Path, n: int, dim: int, code: Path) -> None:
    """Write the store with the measured code (store formats differ between versions)."""
    if (path / "zarr.json").exists():
        return
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, __file__, "--build", str(path), str(n), str(dim)]
    subprocess.run(cmd, env=env, check=True, cwd=code)


def peak_rss(argv: list[str], code: Path) -> tuple[float, float, int]:
    """Run the CLI in a child process; (peak RSS in bytes, wall seconds, exit status)."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedstore.cli.main", *argv],
        env=env,
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    if status and err:
        print(f"    (exit {status}: {err.splitlines()[-1][:200]})")
    return usage.ru_maxrss * 1024.0, wall, os.waitstatus_to_exitcode(status)


def main() -> None:
    if sys.argv[1:2] == ["--build"]:
        make_store(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="20000,60000", help="comma list of row counts")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--commands", default=",".join(COMMANDS), help=", ".join(COMMANDS))
    ap.add_argument("--work", default="/tmp/embedstore-bench-memory", help="stores are kept here")
    ap.add_argument("--code", default=str(ROOT), help="repository root of the code to measure")
    args = ap.parse_args()
    code = Path(args.code).resolve()
    work = Path(args.work) / ("this" if code == ROOT else code.name)
    work.mkdir(parents=True, exist_ok=True)
    names = args.commands.split(",")
    print(f"code: {code}; embeddings float16, dim {args.dim}; one process per command")
    base = {}
    small = work / f"mem-{BASE_ROWS}-{args.dim}.zarr"
    build(small, BASE_ROWS, args.dim, code)
    for name in names:  # what the same command needs on a tiny store: imports, buffers
        base[name] = peak_rss(_argv(name, small), code)[0]
    print(
        f"baseline ({BASE_ROWS} rows): " + ", ".join(f"{n} {base[n] / 1e9:.2f} GB" for n in names)
    )
    print(
        f"{'rows':>8} {'X float32':>10} {'command':>13} {'peak RSS':>9} {'RSS / X':>8} "
        f"{'(RSS-base) / X':>15} {'wall':>7}"
    )
    for n in [int(r) for r in args.rows.split(",")]:
        path = work / f"mem-{n}-{args.dim}.zarr"
        build(path, n, args.dim, code)
        x_bytes = 4.0 * n * args.dim
        for name in names:
            rss, wall, rc = peak_rss(_argv(name, path), code)
            flag = "" if rc == 0 else f"  (exit {rc})"
            print(
                f"{n:>8} {x_bytes / 1e9:>8.2f}GB {name:>13} {rss / 1e9:>7.2f}GB "
                f"{rss / x_bytes:>7.2f}x {(rss - base[name]) / x_bytes:>14.2f}x {wall:>6.0f}s{flag}",
                flush=True,
            )


def _argv(name: str, path: Path) -> list[str]:
    if name == "study":
        return ["study", "run", str(_study_file(path))]
    cmd = COMMANDS[name]
    return [cmd[0], str(path), "-d", "d", "-b", "bb", "--device", "cpu", *cmd[1:]]


def _study_file(path: Path) -> Path:
    """The sweep's settings as a study over ``path`` and a second, small copy of its dataset;
    a fresh results file each time (a study resumes from its results file)."""
    small = path.parent / f"mem-{BASE_ROWS}-study.zarr"
    if not (small / "zarr.json").exists():
        make_store(small, BASE_ROWS, 64)
        from embedstore import open_store

        store = open_store(small, mode="r+")
        store.add_dataset(
            "e",
            ids=store.ids("d"),
            labels=store.labels("d"),
            split=store.split("d"),
            task="multiclass",
            class_names=list(store.dataset_info("d").class_names),
        )
        w = store.writer("e", "bb", dim=64, dtype="float16")
        w.write(store.embeddings("d", "bb"))
        w.finish({"name": "bb"})
    out = path.parent / f"study-{time.time_ns()}.jsonl"
    toml = path.parent / "study.toml"
    toml.write_text(
        f'[study]\nname = "memory"\nseeds = 2\nout = "{out}"\n[options]\nn_bootstrap = 0\n'
        f'device = "cpu"\n[[datasets]]\nstore = "{path}"\ndataset = "d"\n'
        f'[[datasets]]\nstore = "{small}"\ndataset = "e"\n'
        '[features]\nbackbones = ["bb"]\n[[protocols]]\nmethods = ["knn", "logreg"]\n'
        "fractions = [0.1, 1.0]\n"
    )
    return toml


if __name__ == "__main__":
    main()

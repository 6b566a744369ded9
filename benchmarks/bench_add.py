"""Peak memory and time of `embedstore add` on a file larger than the blocks it reads.

    python benchmarks/bench_add.py [--gb 0.5] [--dim 1024] [--format npy|parquet|hdf5]
        [--shuffle] [--dir DIR]

Writes a float32 file of about ``--gb`` GiB (ids shuffled against the dataset's order with
``--shuffle``), then runs `embedstore add` in a child process and reports its wall time and peak
RSS (the child's VmHWM), beside two references measured the same way: a child that only imports
embedstore (the fixed cost) and one that loads the whole array with numpy (what reading it into
memory costs). Bounded memory means the add's peak stays near the import's, far below the file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def child(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of a child process. The peak is the child's own ``VmHWM``
    (its address space's high-water mark, read from /proc while it runs): ``ru_maxrss`` would
    also count this parent's pages at the fork."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, status = 0.0, Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{args[:6]} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, peak


def write_file(folder: Path, fmt: str, n: int, dim: int, order: np.ndarray) -> Path:
    """The array in blocks (never whole in this process either), rows in ``order``."""
    rng = np.random.default_rng(0)
    ids = np.array([f"s{i:08d}" for i in range(n)])[order]
    (folder / "ids.txt").write_text("\n".join(ids))
    step = max(1, (64 << 20) // (4 * dim))
    blocks = ((a, rng.normal(size=(min(step, n - a), dim)).astype(np.float32))
              for a in range(0, n, step))  # fmt: skip
    if fmt == "npy":
        path = folder / "x.npy"
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        for a, b in blocks:
            X[a : a + len(b)] = b
        X.flush()
        del X
    elif fmt == "hdf5":
        import h5py

        path = folder / "x.h5"
        with h5py.File(path, "w") as f:
            d = f.create_dataset("features", shape=(n, dim), dtype="f4", chunks=(256, dim))
            for a, b in blocks:
                d[a : a + len(b)] = b
            f.create_dataset("ids", data=ids.astype(object), dtype=h5py.string_dtype())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / "x.parquet"
        schema = pa.schema([("id", pa.string()), ("emb", pa.list_(pa.float32(), dim))])
        with pq.ParquetWriter(path, schema) as w:
            for a, b in blocks:
                emb = pa.FixedSizeListArray.from_arrays(pa.array(b.reshape(-1)), dim)
                w.write_batch(pa.record_batch([pa.array(ids[a : a + len(b)]), emb], schema))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gb", type=float, default=0.5, help="File size in GiB (float32).")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--format", default="npy", choices=["npy", "parquet", "hdf5"])
    ap.add_argument("--shuffle", action="store_true", help="File rows in a random order.")
    ap.add_argument("--dir", default=None, help="Work folder (default: a temporary one).")
    args = ap.parse_args()
    n = int(args.gb * (1 << 30) // (4 * args.dim))
    order = np.random.default_rng(1).permutation(n) if args.shuffle else np.arange(n)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        path = write_file(folder, args.format, n, args.dim, order)
        size = path.stat().st_size / (1 << 20)
        store = folder / "s.zarr"
        py = sys.executable
        labels = "\n".join(f"s{i:08d},{i % 2}" for i in range(n))
        (folder / "table.csv").write_text("id,label\n" + labels + "\n")
        t_import, rss_import = child([py, "-c", "import embedstore.interop, embedstore.store"])
        t_load, rss_load = child([py, "-c", f"import numpy as np; np.load({str(path)!r}).sum()"]
                                 if args.format == "npy" else [py, "-c", "pass"])  # fmt: skip
        cmd = [py, "-m", "embedstore.cli.main", "add", str(store), "-d", "bench", "-b", "ext", "--from",
               str(path), "--labels", str(folder / "table.csv")]  # fmt: skip
        if args.format == "npy":
            cmd += ["--ids", str(folder / "ids.txt")]
        t_add, rss_add = child(cmd)
        print(f"file: {args.format}, {n} x {args.dim} float32, {size:.0f} MiB, "
              f"{'shuffled' if args.shuffle else 'in dataset order'}")  # fmt: skip
        print(f"{'process':<34}{'seconds':>10}{'peak RSS MiB':>15}")
        print(f"{'import embedstore only':<34}{t_import:>10.2f}{rss_import:>15.0f}")
        if args.format == "npy":
            print(f"{'np.load whole file':<34}{t_load:>10.2f}{rss_load:>15.0f}")
        print(f"{'embedstore add (table + array)':<34}{t_add:>10.2f}{rss_add:>15.0f}")
        print(f"add's peak over the import's: {rss_add - rss_import:.0f} MiB for a {size:.0f} MiB "
              f"file; {size / t_add:.0f} MiB/s")  # fmt: skip


if __name__ == "__main__":
    main()

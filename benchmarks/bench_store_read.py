"""Store reads against np.load of a raw .npy holding the same data.

    python benchmarks/bench_store_read.py [--n 20000] [--dim 2048] [--dtype float16]

Prints seconds for a full read, a test-split read and a 10% random-row read, and each as a ratio
to the same read from a memory-mapped / loaded .npy (what a user's own script would do).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from embedstore import create_store, open_store


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.dim)).astype(args.dtype)
    split = rng.choice([0, 1, 2], args.n, p=[0.7, 0.1, 0.2]).astype(np.uint8)
    rows = np.sort(rng.choice(args.n, args.n // 10, replace=False))
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "x.npy"
        np.save(npy, X)
        store = create_store(Path(tmp) / "s.zarr")
        store.add_dataset(
            "d",
            ids=[str(i) for i in range(args.n)],
            labels=np.zeros(args.n, int),
            split=split,
            task="binary",
            class_names=["a", "b"],
        )
        w = store.writer("d", "bb", dim=args.dim, dtype=args.dtype)
        t = time.perf_counter()
        for s in range(0, args.n, 1024):
            w.write(X[s : s + 1024])
        w.finish({})
        write_s = time.perf_counter() - t
        s = open_store(Path(tmp) / "s.zarr")
        info = s.array_info("d", "bb")
        test = split == 2
        cases = {
            "full read": (
                lambda: s.embeddings("d", "bb"),
                lambda: np.load(npy).astype(np.float32),
            ),
            "test split": (
                lambda: s.embeddings("d", "bb", split="test"),
                lambda: np.load(npy, mmap_mode="r")[test].astype(np.float32),
            ),
            "10% random rows": (
                lambda: s.embeddings("d", "bb", rows=rows),
                lambda: np.load(npy, mmap_mode="r")[rows].astype(np.float32),
            ),
            "10 rows, 100 calls": (  # the fixed cost of a read: opening and metadata checks
                lambda: [s.embeddings("d", "bb", rows=rows[:10]) for _ in range(100)],
                lambda: [
                    np.load(npy, mmap_mode="r")[rows[:10]].astype(np.float32) for _ in range(100)
                ],
            ),  # fmt: skip
        }
        np.testing.assert_array_equal(cases["full read"][0](), cases["full read"][1]())
        print(
            f"{args.n} x {args.dim} {args.dtype}: raw {X.nbytes / 2**20:.0f} MiB, "
            f"store {info.nbytes_stored / 2**20:.0f} MiB on disk, {info.chunk_rows} rows/chunk; "
            f"write {write_s:.2f} s"
        )
        print(f"{'read':<18}{'embedstore s':>14}{'np.load s':>12}{'ratio':>8}")
        for name, (ours, ref) in cases.items():
            a, b = best_of(ours), best_of(ref)
            print(f"{name:<18}{a:>14.3f}{b:>12.3f}{a / b:>8.2f}")


if __name__ == "__main__":
    main()

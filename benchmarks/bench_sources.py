"""Random access to WebDataset tar shards: embedstore's cached member index against what a user
would otherwise write for random access, ``tarfile.open(shard).extractfile(name)`` per row (which
reads the tar's headers up to the member every time), and the one-off cost of indexing.

Data: N samples of a 16x16 PNG + .cls, in 4 shards, written to a temporary folder; rows are read
in a seeded random order, as a DataLoader sampler over a resumed run would.

    .venv/bin/python benchmarks/bench_sources.py [--n 20000] [--rows 300]

Figures depend on the disk and the page cache (the shards are small enough to be cached); the
ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from embedstore.data import TarShardSource


def write_shards(folder: Path, n: int, n_shards: int = 4) -> str:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    per = -(-n // n_shards)
    for s in range(n_shards):
        with tarfile.open(folder / f"b-{s:06d}.tar", "w") as tar:
            for i in range(s * per, min(n, (s + 1) * per)):
                for name, data in ((f"{i:07d}.png", png), (f"{i:07d}.cls", str(i % 5).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return str(folder / f"b-{{000000..{n_shards - 1:06d}}}.tar")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["EMBEDSTORE_CACHE"] = str(folder / "cache")
        pattern = write_shards(folder, args.n)
        size = sum(p.stat().st_size for p in folder.glob("*.tar"))
        t0 = time.perf_counter()
        src = TarShardSource(pattern)
        t_index = time.perf_counter() - t0
        t0 = time.perf_counter()
        src = TarShardSource(pattern)
        t_cached = time.perf_counter() - t0
        rows = np.random.default_rng(1).choice(len(src), size=args.rows, replace=False)

        t0 = time.perf_counter()
        ours = [src.read_bytes(int(r)) for r in rows]
        t_ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        theirs = []
        for r in rows:
            with tarfile.open(src.shards[int(src.shard_of[r])]) as tar:
                handle = tar.extractfile(str(src.ids[r]))
                theirs.append(handle.read() if handle else b"")
        t_theirs = time.perf_counter() - t0
        assert ours == theirs, "the two readers disagree"

        t0 = time.perf_counter()
        for r in rows:
            src.load_rgb(int(r))
        t_decode = time.perf_counter() - t0

    print(f"{args.n} samples in 4 shards ({size / 2**20:.1f} MiB)")
    print(f"index build (first open, one pass)   {t_index:8.3f} s")
    print(
        f"open with the cached index           {t_cached:8.3f} s   ({t_index / t_cached:.1f}x faster)"
    )
    per_ours, per_theirs = t_ours / args.rows * 1e6, t_theirs / args.rows * 1e6
    print(f"random row, cached index (seek+read) {per_ours:8.1f} us")
    print(f"random row, tarfile.open+extractfile {per_theirs:8.1f} us")
    print(f"ratio tarfile / embedstore           {per_theirs / per_ours:8.1f}x")
    print(f"random row read + PNG decode to RGB  {t_decode / args.rows * 1e6:8.1f} us")


if __name__ == "__main__":
    main()

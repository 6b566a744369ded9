"""Extraction on CPU: against the bare forward pass, one decode for two backbones against two
separate passes, and two torchrun processes against one, all on the same images in one run.

    .venv/bin/python benchmarks/bench_extract.py [--images 64] [--batch-size 16] [--threads 1]

1. ``embedstore.extract`` of ``mobilenet_v2.tv_in1k`` (224 px) over the first N Br35H demo
   images against the bare ``model(x)`` over the same images preprocessed beforehand.
2. Decode once: ``mobilenet_v2.tv_in1k`` and ``efficientnet_lite0.in1k`` in one call (each image
   read and decoded once, both models on each batch) against one call per backbone (what
   running the extraction twice costs).
3. Scaling: ``torchrun --standalone --nproc-per-node=P --no-python embedstore extract`` with
   P = 1 and 2 (one thread each, gloo) on the same images and backbone; the extraction time of
   rank 0's summary (every rank's rows) and the command's wall time (start-up and model loading
   included).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from embedstore.backbones import load_model
from embedstore.data import ImageTransform, Source, demo_source
from embedstore.extraction import default_workers, extract

ROOT = Path(__file__).resolve().parents[1]
A, B = "mobilenet_v2.tv_in1k", "efficientnet_lite0.in1k"


class FirstRows(Source):
    """The first ``n`` rows of each class of another source (same files, same loader)."""

    def __init__(self, base: Source, n: int) -> None:
        per_class = n // len(base.class_names)
        rows = np.concatenate(
            [np.flatnonzero(base.labels == c)[:per_class] for c in range(len(base.class_names))]
        )
        self.base, self.rows = base, rows
        super().__init__(
            description=f"{base.description} (first {len(rows)})",
            ids=base.ids[rows],
            labels=base.labels[rows],
            class_names=base.class_names,
            task=base.task,
            split=base.split[rows],
        )

    def load(self, index: int):
        return self.base.load(int(self.rows[index]))

    def locate(self, index: int) -> str:
        return self.base.locate(int(self.rows[index]))


def _extract(src: Source, backbones: list[str], bs: int, workers: int) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        return extract(
            f"{tmp}/bench.zarr",
            dataset="br35h",
            source=src,
            backbones=backbones,
            batch_size=bs,
            workers=workers,
            device="cpu",
        )


def against_bare_forward(src: Source, bs: int, workers: int, repeats: int) -> None:
    n = len(src)
    best = min(
        (_extract(src, [A], bs, workers)[0] for _ in range(repeats)), key=lambda s: s.seconds
    )
    loaded = load_model(A)
    transform = ImageTransform(loaded.spec.preprocess)
    x = torch.stack([transform(src.load_rgb(i)) for i in range(n)])
    model = loaded.model.eval().to(memory_format=torch.channels_last)
    bare_s = float("inf")
    with torch.inference_mode():
        model(x[:bs].contiguous(memory_format=torch.channels_last))  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, n, bs):
                model(x[i : i + bs].contiguous(memory_format=torch.channels_last))
            bare_s = min(bare_s, time.perf_counter() - t0)
    ext_rate, bare_rate = n / best.seconds, n / bare_s
    print(f"1. {A}, best of {repeats}")
    print(f"   embedstore extract  : {best.seconds:7.2f} s  {ext_rate:7.1f} img/s")
    print(f"   bare forward only   : {bare_s:7.2f} s  {bare_rate:7.1f} img/s (tensors ready)")
    print(f"   ratio               : {ext_rate / bare_rate:.2f}x the bare forward's speed")
    print(f"   writer thread busy  : {100 * best.writer_seconds / best.seconds:.1f}% (overlapped)")


def decode_once(src: Source, bs: int, workers: int, repeats: int) -> None:
    n = len(src)
    t0 = time.perf_counter()
    for i in range(n):
        src.load_rgb(i)
    decode_s = time.perf_counter() - t0
    one_pass = separate_a = separate_b = float("inf")
    for _ in range(repeats):  # interleaved, so that a change in the machine's load hits all three
        one_pass = min(one_pass, max(s.seconds for s in _extract(src, [A, B], bs, workers)))
        separate_a = min(separate_a, _extract(src, [A], bs, workers)[0].seconds)
        separate_b = min(separate_b, _extract(src, [B], bs, workers)[0].seconds)
    separate = separate_a + separate_b
    print(f"2. decode once: {A} + {B}, best of {repeats}")
    print(f"   one pass, both      : {one_pass:7.2f} s")
    print(f"   two passes          : {separate:7.2f} s")
    print(f"   ratio               : {separate / one_pass:.2f}x faster in one pass")
    print(f"   (decoding alone: {1000 * decode_s / n:.1f} ms/image in one process; the forward")
    print(f"    passes take {1000 * one_pass / n:.1f} ms/image, so on CPU the saving is bounded")
    print("    by the decode's share; on a GPU the forward shrinks and decoding dominates)")


def _torchrun(nproc: int, csv: Path, bs: int, tmp: str) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "--no-python", sys.executable, "-m", "embedstore.cli.main",
           "extract", f"{tmp}/p{nproc}.zarr", "-d", "br35h", "--source", str(csv),
           "--label-column", "label", "-b", A, "--batch-size", str(bs),
           "--chunk-rows", str(bs), "--workers", "0", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    row = next(line for line in done.stdout.splitlines() if A in line and "written" in line)
    seconds = float(re.split(r"\s*[│|]\s*", row.strip("│| "))[4])
    return seconds, wall


def scaling(src: Source, bs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "first.csv"
        lines = ["path,label"] + [
            f"{src.locate(i)},{src.class_names[src.labels[i]]}" for i in range(len(src))
        ]
        csv.write_text("\n".join(lines) + "\n")
        one = _torchrun(1, csv, bs, tmp)
        two = _torchrun(2, csv, bs, tmp)
    print(f"3. torchrun, {A}, one thread per process, gloo, chunks of {bs} rows")
    print(f"   1 process           : extraction {one[0]:6.1f} s, command {one[1]:6.1f} s")
    print(f"   2 processes         : extraction {two[0]:6.1f} s, command {two[1]:6.1f} s")
    print(f"   scaling             : {one[0] / two[0]:.2f}x the extraction speed of one process")
    print(f"                         ({one[1] / two[1]:.2f}x with start-up and loading)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (as torchrun's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    src = FirstRows(demo_source(), args.images)
    workers = default_workers()
    print(
        f"{len(src)} Br35H images, batch {args.batch_size}, {workers} loader worker(s), "
        f"torch threads {torch.get_num_threads()}, CPU ({os.cpu_count()} cores)"
    )
    against_bare_forward(src, args.batch_size, workers, args.repeats)
    decode_once(src, args.batch_size, workers, args.repeats)
    scaling(src, args.batch_size)
    print("(machine shared with other users: numbers are indicative)")


if __name__ == "__main__":
    main()

"""Extraction throughput on CPU against the bare model forward pass on the same tensors.

    /work/venv/bin/python benchmarks/bench_extract.py [--images 256] [--batch-size 32]

Runs ``embedstore.extract`` (decode + preprocess in DataLoader workers, forward, background
chunk writer) for ``mobilenet_v2.tv_in1k`` at 224 px over the first N Br35H demo images, then
times the bare ``model(x)`` over the same images preprocessed beforehand (what a user's own loop
costs at best), and reports images/s, their ratio and the writer's share of the wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from embedstore.backbones import load_model
from embedstore.data import ImageTransform, Source, demo_source
from embedstore.extract import default_workers, extract


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="mobilenet_v2.tv_in1k")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    src = FirstRows(demo_source(), args.images)
    n, bs = len(src), args.batch_size
    workers = default_workers()
    print(
        f"{args.backbone}, {n} Br35H images, batch {bs}, {workers} loader worker(s), "
        f"torch threads {torch.get_num_threads()}, CPU"
    )

    best = None
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            (s,) = extract(
                f"{tmp}/bench.zarr", dataset="br35h", source=src, backbones=[args.backbone],
                batch_size=bs, workers=workers, device="cpu", dtype="float16",
            )  # fmt: skip
        if best is None or s.seconds < best.seconds:
            best = s
    assert best is not None

    loaded = load_model(args.backbone)
    transform = ImageTransform(loaded.spec.preprocess)
    t0 = time.perf_counter()
    x = torch.stack([transform(src.load(i)) for i in range(n)])
    prep_s = time.perf_counter() - t0
    model = loaded.model.eval().to(memory_format=torch.channels_last)
    bare_s = float("inf")
    with torch.inference_mode():
        model(x[:bs].contiguous(memory_format=torch.channels_last))  # warm-up
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for i in range(0, n, bs):
                model(x[i : i + bs].contiguous(memory_format=torch.channels_last))
            bare_s = min(bare_s, time.perf_counter() - t0)

    ext_rate, bare_rate = n / best.seconds, n / bare_s
    runs = f"best of {args.repeats}"
    print(f"  embedstore extract   : {best.seconds:7.2f} s  {ext_rate:8.1f} img/s ({runs})")
    print(f"  bare forward only    : {bare_s:7.2f} s  {bare_rate:8.1f} img/s (tensors ready)")
    print(f"  decode+preprocess, 1 process: {prep_s:5.2f} s  {n / prep_s:8.1f} img/s")
    print(f"  ratio extract / bare forward : {ext_rate / bare_rate:.2f}x the bare forward's speed")
    print(
        f"  writer thread busy   : {best.writer_seconds:.3f} s "
        f"({100 * best.writer_seconds / best.seconds:.1f}% of extraction wall time, overlapped)"
    )
    print("  (machine shared with other users: numbers are indicative)")


if __name__ == "__main__":
    main()

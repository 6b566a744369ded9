"""Who computes what: the backbones' remaining chunks, grouped into passes and split over ranks.

Batches are aligned to absolute rows (batch ``k`` is rows ``[k*bs, (k+1)*bs)``) and every chunk
holds whole batches, so each backbone sees exactly the batches it would see extracted alone, in
one process or many, fresh or resumed: that is what makes the bytes identical.

A pass is a group of backbones that run together on each decoded batch of images; backbones
with different batch sizes (an array made earlier with other chunks) or that do not fit on the
device together go to different passes. In a pass the batches still needed by any backbone are
cut into ``world_size`` contiguous spans of equal work; each chunk not yet done goes to the rank
whose span holds its first batch, so a rank writes whole chunks only and two ranks never write
the same chunk, whatever each backbone's chunk size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Job", "Share", "aligned_batch_size", "todo_chunks", "group_passes", "split_work"]

Rows = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Job:
    """One backbone's part of this run: its array's geometry and the chunks still to write."""

    name: str
    index: int
    dim: int
    dtype: str
    chunk_rows: int
    batch_size: int
    rows_before: int
    missing_before: int
    status: str
    todo: Rows


@dataclass(frozen=True)
class Share:
    """One rank's work in one pass: the batches to decode, and per backbone the chunk-aligned
    row blocks it writes (contiguous runs of chunks)."""

    batches: Rows
    runs: dict[str, Rows]

    def needs(self, name: str, start: int) -> bool:
        """Whether backbone ``name`` must compute the batch starting at row ``start``."""
        return any(a <= start < b for a, b in self.runs.get(name, ()))


def aligned_batch_size(chunk_rows: int, n: int, batch_size: int) -> int:
    """The largest batch size <= the asked one that divides the chunk (resume granularity)."""
    if chunk_rows >= n or chunk_rows % batch_size == 0:
        return batch_size
    return max(d for d in range(1, min(batch_size, chunk_rows) + 1) if chunk_rows % d == 0)


def todo_chunks(done: np.ndarray, chunk_rows: int, n: int) -> Rows:
    """Row ranges of the chunks not marked done."""
    return tuple(
        (int(i) * chunk_rows, min(n, (int(i) + 1) * chunk_rows)) for i in np.flatnonzero(~done)
    )


def group_passes(
    jobs: Sequence[Job], nbytes: dict[str, int], budget: int | None
) -> list[tuple[str, ...]]:
    """Backbone names per pass: one pass per batch size, split further where the models'
    weights do not fit in ``budget`` bytes together (first fit, largest first; None: no limit).
    """
    by_size: dict[int, list[Job]] = defaultdict(list)
    for job in jobs:
        by_size[job.batch_size].append(job)
    passes: list[list[str]] = []
    for group in by_size.values():
        bins: list[tuple[int, list[str]]] = []
        for job in sorted(group, key=lambda j: -nbytes[j.name]):
            for i, (used, names) in enumerate(bins):
                if budget is None or used + nbytes[job.name] <= budget:
                    bins[i] = (used + nbytes[job.name], [*names, job.name])
                    break
            else:
                bins.append((nbytes[job.name], [job.name]))
        order = {j.name: j.index for j in group}
        passes += [sorted(names, key=order.__getitem__) for _, names in bins]
    return [tuple(p) for p in passes]


def split_work(jobs: Sequence[Job], n: int, world_size: int) -> list[Share]:
    """Each rank's :class:`Share` of one pass (all jobs share one batch size)."""
    bs = jobs[0].batch_size
    need: dict[int, int] = defaultdict(int)  # batch index -> backbones needing it
    for job in jobs:
        for start, stop in job.todo:
            for k in range(start // bs, -(-stop // bs)):
                need[k] += 1
    total = sum(need.values())
    owner, acc = {}, 0
    for k in sorted(need):
        owner[k] = min(world_size - 1, acc * world_size // total)
        acc += need[k]
    runs: list[dict[str, list[tuple[int, int]]]] = [{} for _ in range(world_size)]
    batches: list[set[int]] = [set() for _ in range(world_size)]
    for job in jobs:
        for start, stop in job.todo:
            rank = owner[start // bs]
            mine = runs[rank].setdefault(job.name, [])
            if mine and mine[-1][1] == start:
                mine[-1] = (mine[-1][0], stop)
            else:
                mine.append((start, stop))
            batches[rank].update(range(start // bs, -(-stop // bs)))
    return [
        Share(
            batches=tuple((k * bs, min(n, (k + 1) * bs)) for k in sorted(batches[r])),
            runs={name: tuple(blocks) for name, blocks in runs[r].items()},
        )
        for r in range(world_size)
    ]

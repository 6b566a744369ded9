"""``--workers N``: a plan's units in N processes on this machine.

Each process (started with ``spawn``: no inherited thread pools or locks) takes units from a
queue, largest first, prepares the part a unit belongs to once, loads the features of one
(dataset, feature set) at a time and sends every record back as its cell finishes, so that the
parent writes it at once (an interrupted run keeps every finished cell). Each process uses
``cores // N`` threads, so N processes do not oversubscribe the machine.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from embedstore.errors import EmbedstoreError

__all__ = ["run_in_processes"]


def run_in_processes(
    prepared: list[Any],
    pending: list[Any],
    done: set[str],
    workers: int,
    got: Callable[[Any], None],
    predictions: Any = None,
) -> None:
    """Run ``pending`` units in ``workers`` processes; ``got`` receives each record."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    parts = [replace(p.part, store=p.part.location) for p in prepared]
    for unit in sorted(pending, key=lambda u: -len(u.cells) * len(u.method.split(","))):
        tasks.put(unit)
    n = min(workers, len(pending))
    for _ in range(n):
        tasks.put(None)
    threads = max(1, (os.cpu_count() or 1) // n)
    procs = [
        ctx.Process(
            target=_worker, args=(parts, done, tasks, results, threads, predictions), daemon=True
        )
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    remaining = len(pending)
    try:
        while remaining:
            try:
                kind, payload = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise EmbedstoreError(
                        f"a worker process stopped (exit code {dead[0].exitcode}); the cells it "
                        "finished are kept: run the same command again to do the rest"
                    ) from None
                continue
            if kind == "record":
                got(payload)
            elif kind == "unit":
                remaining -= 1
            else:  # an error in a worker: the same error here
                raise payload
    finally:
        for p in procs:
            if p.is_alive() and remaining:
                p.terminate()
        for p in procs:
            p.join(timeout=30)


def _worker(parts, done, tasks, results, threads: int, predictions) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from threadpoolctl import threadpool_limits

    from embedstore.engine.cells import open_store_of, prepare, run_unit, unit_features

    threadpool_limits(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    prepared: dict[int, Any] = {}
    loaded: dict = {}
    while (unit := tasks.get()) is not None:
        try:
            if unit.part not in prepared:
                part = parts[unit.part]
                prepared[unit.part] = prepare(part, open_store_of(part.store), None)
            prep = prepared[unit.part]
            features, shared = unit_features(prep, unit.fs, loaded)
            run_unit(
                prep,
                unit,
                features,
                shared,
                done=done,
                emit=lambda r: results.put(("record", r)),
                predictions=predictions,
            )
        except BaseException as exc:  # sent to the parent, which raises it
            try:
                results.put(("error", exc))
            except Exception:
                results.put(("error", EmbedstoreError(f"{type(exc).__name__}: {exc}")))
            return
        results.put(("unit", None))

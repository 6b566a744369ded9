"""The one runner: a plan's cells, in this process, in worker processes, or across torchrun ranks.

1. Every part is prepared (:func:`~embedstore.engine.cells.prepare`): names, arrays, methods and
   label subsets are checked for the whole plan before any feature is read.
2. The cells are grouped in units, one per (dataset, feature set, method): a process holds the
   features of one (dataset, feature set) at a time, never the whole study.
3. Units run here (``workers=1``), in ``workers`` processes (largest first, each process loading
   what its unit needs), or, under ``torchrun``, rank ``r`` of ``W`` takes every ``W``-th unit.
   The records are the same whatever runs them: subsets, folds and episodes come from the seeds
   and the data alone.
4. With ``out``, records are appended as cells finish; cells whose ``record_id`` is already there
   are not run again (resume), and two runs writing one file at once are refused (a lock beside
   the file; the ranks of one torchrun job share it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from embedstore.engine.cells import (
    Prepared,
    Unit,
    open_store_of,
    prepare,
    record_id,
    run_unit,
    skipped_record,
    unit_features,
    units,
)
from embedstore.engine.plan import Plan
from embedstore.errors import InvalidDataError
from embedstore.results.records import ProbeResult, read_jsonl, write_jsonl

__all__ = ["Progress", "cell_ids", "plan_units", "prepare_plan", "run_plan"]

Progress = Callable[[int, int, str], None]


def _world() -> tuple[int, int]:
    """(rank, world size) of a torchrun job, (0, 1) in a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def prepare_plan(plan: Plan, on_skip: Callable[[str, str], None] | None = None) -> list[Prepared]:
    """Prepare every part (see :func:`~embedstore.engine.cells.prepare`), checking the plan whole."""
    return [prepare(part, open_store_of(part.store), on_skip) for part in plan.parts]


def plan_units(prepared: list[Prepared]) -> list[Unit]:
    return [u for i, p in enumerate(prepared) for u in units(p, i)]


def run_plan(
    plan: Plan,
    *,
    out: str | os.PathLike[str] | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    on_record: Callable[[ProbeResult], None] | None = None,
    predictions: bool = False,
) -> list[ProbeResult]:
    """Run every cell of ``plan``; return its records in plan order (part, feature set, method,
    label setting, seed), records already in ``out`` included.

    Args:
        out: a JSON-lines results file: records are appended as cells finish; cells already in it
            are skipped. Under torchrun it is required (the ranks meet there).
        workers: processes on this machine (each holds one feature set at a time: memory grows
            at most ``workers``-fold).
        progress: called as ``progress(done, total, description)`` after each cell.
        on_skip: under ``methods='all'``, called with (method, reason) for a method that cannot
            run on a dataset (default: a warning).
        on_record: called with each new record (e.g. a line naming a cell not computed).
        predictions: also keep every record's per-image test predictions, one Parquet file per
            record in the folder beside ``out`` (:func:`embedstore.results.predictions.
            predictions_folder`); needs ``out``.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InvalidDataError(f"workers must be a whole number >= 1; got {workers!r}")
    rank, world = _world()
    if world > 1 and out is None:
        raise InvalidDataError(
            "under torchrun the ranks share their records through the results file: give --out"
        )
    if predictions and out is None:
        raise InvalidDataError(
            "per-image predictions are kept beside the results file: give --out (or out=) "
            "with --predictions"
        )
    folder = None
    if predictions and out is not None:  # checked above
        from embedstore.results.predictions import predictions_folder

        folder = predictions_folder(out)
    if on_skip is None:
        on_skip = _warn_skip
    prepared = prepare_plan(plan, on_skip)
    all_units = plan_units(prepared)
    if out is None:
        new = _execute(prepared, all_units, set(), workers, progress, on_record, None)
        return _collect(prepared, new)
    from embedstore.store import writer_lock

    with writer_lock(
        os.fspath(out),
        ["results"],
        run_id=os.environ.get("TORCHELASTIC_RUN_ID"),
        what=f"results file {os.fspath(out)}",
        folder=False,
    ):
        have = {r.record_id: r for r in read_jsonl(out) if r.record_id}
        skips = [
            skipped_record(p.part, fs, why)
            for p in prepared
            for fs, why in p.skipped_sets
            if rank == 0
        ]
        new_skips = [r for r in skips if r.record_id not in have]
        if new_skips:
            write_jsonl(new_skips, out)

        def emit(r: ProbeResult) -> None:
            write_jsonl([r], out)
            if on_record is not None:
                on_record(r)

        mine = all_units[rank::world] if world > 1 else all_units
        records = _execute(prepared, mine, set(have), workers, progress, emit, folder)
        if world > 1:
            _barrier()
            records = {r.record_id: r for r in read_jsonl(out) if r.record_id}
        else:
            records = {**have, **records}
    return _collect(prepared, records)


def _barrier() -> None:
    """Wait until every rank has finished its share (gloo: no GPU needed)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()
    dist.destroy_process_group()


def _warn_skip(method: str, reason: str) -> None:
    import warnings

    warnings.warn(f"{method} skipped: {reason}", stacklevel=4)


def _execute(
    prepared: list[Prepared],
    todo: list[Unit],
    done: set[str],
    workers: int,
    progress: Progress | None,
    emit: Callable[[ProbeResult], None] | None,
    folder: Any = None,
) -> dict[str, ProbeResult]:
    """Run the cells of ``todo`` not in ``done``, here or in ``workers`` processes; the new
    records by record id."""
    ids = {id(u): cell_ids(prepared, u) for u in todo}
    wanted = set().union(*ids.values()) if ids else set()
    total, finished = len(wanted), len(wanted & done)
    results: dict[str, ProbeResult] = {}

    def got(r: ProbeResult) -> None:
        nonlocal finished
        results[r.record_id] = r
        finished += 1
        if emit is not None:
            emit(r)
        if progress is not None:
            where = "".join(f", {k} {v}" for k, v in r.labels.items() if k in ("fraction", "shots"))
            text = f"{r.method} on {r.feature_name} ({r.dataset}{where}, seed {r.seed})"
            progress(finished, total, text)

    pending = [u for u in todo if not ids[id(u)] <= done]
    if workers == 1 or len(pending) <= 1:
        loaded: dict = {}
        for u in pending:
            features, shared = unit_features(prepared[u.part], u.fs, loaded)
            run_unit(prepared[u.part], u, features, shared, done=done, emit=got, predictions=folder)
        return results
    from embedstore.engine.workers import run_in_processes

    run_in_processes(prepared, pending, done, workers, got, folder)
    return results


def cell_ids(prepared: list[Prepared], u: Unit) -> set[str]:
    """The record ids of a unit's cells (what a results file is matched against)."""
    prep = prepared[u.part]
    fs = prep.sets[u.fs]
    return {record_id(prep, fs, m, i, s) for m in u.method.split(",") for i, s in u.cells}


def _collect(prepared: list[Prepared], records: dict[str, ProbeResult]) -> list[ProbeResult]:
    """Records in plan order: part, feature set, method (registry order), setting, seed."""
    out: list[ProbeResult] = []
    for prep in prepared:
        for fs, why in prep.skipped_sets:
            r = skipped_record(prep.part, fs, why)
            out.append(records.get(r.record_id, r))
        for fs in prep.sets:
            for m in prep.methods:
                if not prep.runs(m, fs):
                    continue
                for k in range(len(prep.settings)):
                    for s in prep.part.seeds:
                        rid = record_id(prep, fs, m.name, k, s)
                        if rid in records:
                            out.append(records[rid])
    return out

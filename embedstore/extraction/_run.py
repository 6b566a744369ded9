"""The heavy half of ``extract`` (torch): load the models, set the store up (rank 0, under a
lock), run the passes on every rank, then finish and mark the arrays complete with provenance
that counts every rank. ``_api`` checks the arguments first, without torch."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
import torchvision

from embedstore._version import __version__
from embedstore.data import Source
from embedstore.errors import InvalidDataError
from embedstore.extraction._check import Options
from embedstore.extraction._pass import PassResult, run_pass
from embedstore.extraction._plan import (
    Job,
    Share,
    aligned_batch_size,
    group_passes,
    split_work,
    todo_chunks,
)
from embedstore.extraction._prepare import Prepared, autocast_name, numerics, prepare_backbones
from embedstore.extraction._records import ExtractProgress, ExtractSummary
from embedstore.extraction._world import World, join_world
from embedstore.store import Store, create_store, default_chunk_rows, write_meta, writer_lock

__all__ = ["run_extract"]

_SETUP_WAIT_S = 120.0  # another process creating the store or a dataset holds it for seconds


@dataclass(frozen=True)
class _Plan:
    jobs: tuple[Job, ...]
    passes: tuple[tuple[str, ...], ...]
    shares: tuple[tuple[Share, ...], ...]  # [pass][rank]
    threads: int = 1  # CPU intra-op threads of every rank (recorded in the arrays)


def run_extract(
    store_path: str | os.PathLike[str],
    *,
    opts: Options,
    src: Source,
    backbones: Sequence[str],
    weights: dict[str, str] | None,
    unverified_weights: bool,
    progress: Callable[[ExtractProgress], None] | None,
    storage_options: dict[str, Any] | None,
) -> list[ExtractSummary]:
    """:func:`~embedstore.extraction.extract` once its arguments are checked: load the models,
    set the store up (rank 0, under a lock), run the passes, complete the arrays."""
    world, dev = join_world(opts.device)
    locks = contextlib.ExitStack()
    saved_threads = torch.get_num_threads()
    try:
        prepared = world.agree(
            lambda: prepare_backbones(backbones, weights, unverified_weights=unverified_weights)
        )
        where = str(store_path)

        def setup() -> _Plan:
            locks.enter_context(
                writer_lock(
                    where,
                    [f"{opts.dataset}/{p.name}" for p in prepared],
                    run_id=world.run_id,
                    storage_options=storage_options,
                )
            )
            with writer_lock(
                where,
                ["setup"],
                run_id=world.run_id,
                wait=_SETUP_WAIT_S,
                storage_options=storage_options,
            ):
                store = create_store(where, storage_options=storage_options)
                store.add_dataset(opts.dataset, **src.dataset_fields(), overwrite=opts.overwrite)
                if src.meta:  # --meta-column: attributes for `embedstore audit --meta`
                    write_meta(store, opts.dataset, src.meta)
                return _plan(store, src, opts, prepared, world.size, dev)

        plan = world.from_root(setup)
        store = create_store(where, storage_options=storage_options)
        return _run(store, src, opts, prepared, plan, world, dev, progress)
    except BaseException as exc:
        world.fail(exc)  # tell the other ranks, unless they all raise this same error
        raise
    finally:
        locks.close()
        world.close()
        torch.set_num_threads(saved_threads)


def _job(store: Store, opts: Options, p: Prepared, index: int, n: int, num: dict) -> Job:
    """Create, resume or (``overwrite``) recreate one backbone's array; what is left to do."""
    ds, name = opts.dataset, p.name
    if name in store.backbones(ds) and not opts.overwrite:
        info = store.array_info(ds, name)
        if info.complete:
            return Job(
                name=name,
                index=index,
                dim=info.shape[1],
                dtype=info.dtype,
                chunk_rows=info.chunk_rows,
                batch_size=opts.batch_size,
                rows_before=n,
                missing_before=info.n_missing,
                status="skipped",
                todo=(),
            )
    chunks = opts.chunk_rows or default_chunk_rows(p.spec.dim, opts.dtype, opts.batch_size, n)
    writer = store.writer(
        ds, name, dim=p.spec.dim, dtype=opts.dtype, chunk_rows=chunks, overwrite=opts.overwrite,
        numerics=num,
    )  # fmt: skip
    todo = todo_chunks(store.chunks_done(ds, name), writer.chunk_rows, n)
    before = n - sum(b - a for a, b in todo)
    return Job(
        name=name,
        index=index,
        dim=p.spec.dim,
        dtype=opts.dtype,
        chunk_rows=writer.chunk_rows,
        batch_size=aligned_batch_size(writer.chunk_rows, n, opts.batch_size),
        rows_before=before,
        missing_before=store.array_info(ds, name).n_missing if before else 0,
        status="resumed" if before else "written",
        todo=todo,
    )


def _plan(
    store: Store,
    src: Source,
    opts: Options,
    prepared: Sequence[Prepared],
    world_size: int,
    device: torch.device,
) -> _Plan:
    threads = opts.threads or _recorded_threads(store, opts, prepared) or torch.get_num_threads()
    num = numerics(device, opts.dtype, threads)
    jobs = tuple(_job(store, opts, p, i, len(src), num) for i, p in enumerate(prepared))
    active = [j for j in jobs if j.todo]
    budget = None
    if device.type == "cuda":  # GPU only: half the free memory for the models' weights
        budget = torch.cuda.mem_get_info(device)[0] // 2
    passes = group_passes(active, {p.name: p.nbytes for p in prepared}, budget)
    by_name = {j.name: j for j in jobs}
    shares = tuple(
        tuple(split_work([by_name[n] for n in names], len(src), world_size)) for names in passes
    )
    return _Plan(jobs=jobs, passes=tuple(passes), shares=shares, threads=threads)


def _recorded_threads(store: Store, opts: Options, prepared: Sequence[Prepared]) -> int | None:
    """The CPU threads recorded by an incomplete array this run resumes (they must match)."""
    if opts.overwrite:
        return None
    for p in prepared:
        if p.name in store.backbones(opts.dataset):
            recorded = store.array_info(opts.dataset, p.name).numerics.get("threads")
            if isinstance(recorded, int):
                return recorded
    return None


def _run(
    store: Store,
    src: Source,
    opts: Options,
    prepared: Sequence[Prepared],
    plan: _Plan,
    world: World,
    dev: torch.device,
    progress: Callable[[ExtractProgress], None] | None,
) -> list[ExtractSummary]:
    """Every pass on this rank, then finishing and completing the arrays (all ranks)."""
    by_name = {p.name: p for p in prepared}
    jobs = {j.name: j for j in plan.jobs}
    results: dict[str, tuple[int, PassResult]] = {}
    if dev.type == "cpu":  # the recorded count on every rank, whatever the launcher set
        torch.set_num_threads(plan.threads)
    for k, names in enumerate(plan.passes):
        t0 = time.perf_counter()

        def report(names: tuple[str, ...] = names, t0: float = t0) -> None:
            if progress is None or world.rank != 0:
                return
            for name in names:
                job = jobs[name]
                progress(
                    ExtractProgress(
                        backbone=name,
                        index=job.index,
                        n_backbones=len(prepared),
                        done=job.rows_before + world.add(f"rows/{name}", 0),
                        total=len(src),
                        start_row=job.rows_before,
                        seconds=time.perf_counter() - t0,
                    )
                )

        result = run_pass(
            store=store,
            src=src,
            opts=opts,
            prepared=[by_name[n] for n in names],
            jobs=jobs,
            share=plan.shares[k][world.rank],
            world=world,
            device=dev,
            report=report,
        )
        world.wait_for_others(report, step=f"pass{k}")
        results.update({name: (k, result) for name in names})
    mine = {
        name: (r.rows[name], r.missing[name], r.seconds, r.writer_seconds)
        for name, (_, r) in results.items()
    }
    everyone = world.gather(mine)
    # every array this run completes, those with no chunk left to write included (a run stopped
    # after its last chunk, before the completion mark): they are in no pass
    shared = {name: [n for n in names if n != name] for names in plan.passes for name in names}
    provenance = world.broadcast(
        {
            job.name: _provenance(
                by_name[job.name],
                job,
                opts,
                dev,
                src,
                world.size,
                everyone,
                shared.get(job.name, []),
            )  # fmt: skip
            for job in plan.jobs
            if job.status != "skipped"
        }
        if world.rank == 0
        else None
    )
    assert provenance is not None  # rank 0's, on every rank after the broadcast
    for name, (_, r) in results.items():
        for writer in r.writers[name]:
            writer.finish(provenance[name])  # the last partial chunk; complete if all are done
    world.barrier()
    return world.from_root(
        lambda: _complete(store, opts, plan, results, everyone, provenance, dev, world.size)
    )


def _provenance(
    p: Prepared,
    job: Job,
    opts: Options,
    dev: torch.device,
    src: Source,
    world_size: int,
    everyone: list[dict[str, tuple[int, int, float, float]]],
    shared_with: list[str],
) -> dict[str, Any]:
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
    return {
        "backbone": p.spec.config(),
        "weights_path": str(p.loaded.weights_path) if p.loaded.weights_path else None,
        "weights_sha256": p.loaded.weights_sha256,
        **p.loaded.provenance(),
        "software": {
            "embedstore": __version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": platform.python_version(),
        },
        "device": str(dev),
        "device_name": device_name or platform.machine(),
        "extracted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dtype": opts.dtype,
        "autocast": autocast_name(dev),
        "channels_last": p.channels_last,
        "batch_size": job.batch_size,
        "n_images": len(src),
        "n_missing": job.missing_before + sum(e[p.name][1] for e in everyone if p.name in e),
        "resumed_from_row": job.rows_before,
        "seconds": round(max((e[p.name][2] for e in everyone if p.name in e), default=0.0), 3),
        "source": src.description,
        "world_size": world_size,
        "decoded_with": shared_with,
    }


def _complete(
    store: Store,
    opts: Options,
    plan: _Plan,
    results: dict[str, tuple[int, PassResult]],
    everyone: list[dict[str, tuple[int, int, float, float]]],
    provenance: dict[str, dict[str, Any]],
    dev: torch.device,
    world_size: int,
) -> list[ExtractSummary]:
    """Rank 0, after every rank finished: mark arrays whose chunks are all done complete (those
    no rank had to write in this run included) and summarise, counting every rank's rows."""
    summaries = []
    for job in plan.jobs:
        ds, name = opts.dataset, job.name
        if job.status != "skipped" and not store.array_info(ds, name).complete:
            if not store.chunks_done(ds, name).all():
                raise InvalidDataError(
                    f"'{name}' for '{ds}' still has chunks not on disk after every rank "
                    "finished; run the same command again to resume"
                )
            store.writer(ds, name, dim=job.dim, dtype=job.dtype).finish(provenance[name])
        info = store.array_info(ds, name)
        pass_index, _ = results.get(name, (0, None))
        summaries.append(
            ExtractSummary(
                dataset=ds,
                backbone=name,
                rows=info.shape[0],
                dim=info.shape[1],
                dtype=info.dtype,
                status=job.status,
                start_row=job.rows_before,
                rows_extracted=sum(e[name][0] for e in everyone if name in e),
                n_missing=info.n_missing,
                seconds=max((e[name][2] for e in everyone if name in e), default=0.0),
                writer_seconds=sum(e[name][3] for e in everyone if name in e),
                device=str(dev),
                world_size=world_size,
                pass_index=pass_index,
            )
        )
    return summaries

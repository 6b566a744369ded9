"""``embedstore.audit(...)``: every audit of one dataset, from its stored embeddings alone.

Everything that can be checked (the store, the dataset, each backbone complete, the attribute
columns, the options) is checked before any embedding is read. Memory: one backbone's float32
feature matrix at a time, plus the blocked searches' bounded blocks (never an n × n matrix).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from embedstore.auditing.result import AuditResult, Progress
from embedstore.errors import IncompleteArrayError, InvalidDataError

__all__ = ["AuditResult", "audit"]


def _check(store: Any, dataset: str, backbones: Sequence[str] | None, meta: Sequence[str],
           k_mad: float, top: int) -> tuple[list[str], dict[str, Any]]:  # fmt: skip
    from embedstore.store import require_meta

    info = store.dataset_info(dataset)  # DatasetNotFoundError lists the datasets
    names = list(backbones) if backbones else list(info.backbones)
    if not names:
        raise InvalidDataError(
            f"dataset '{dataset}' has no backbone arrays to audit; extract one first "
            "(`embedstore extract STORE --dataset ... --backbone ...`)"
        )
    for name in names:
        arr = store.array_info(dataset, name)  # ArrayNotFoundError suggests the right name
        if not arr.complete:
            raise IncompleteArrayError(
                f"the '{name}' embeddings of '{dataset}' are incomplete ({arr.rows_written} of "
                f"{arr.shape[0]} rows); rerun the same `embedstore extract` to finish them, or "
                "leave -b out to audit the complete backbones"
            )
    require_meta(store, dataset, meta)
    if not k_mad > 0:
        raise InvalidDataError(f"k_mad must be positive; got {k_mad}")
    if int(top) < 1:
        raise InvalidDataError(f"top must be at least 1; got {top}")
    return names, {"info": info}


def audit(
    store: Any,
    dataset: str,
    *,
    backbones: Sequence[str] | None = None,
    meta: Sequence[str] = (),
    k_mad: float | None = None,
    search: str = "auto",
    top: int = 20,
    device: str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
) -> AuditResult:
    """Audit one dataset of a store: near-duplicates, patients in two splits, suspected label
    errors and (with ``meta``) shortcuts. See docs/audit.md for each rule.

    Args:
        store: a :class:`~embedstore.store.Store` or its location (opened read-only).
        dataset: the dataset to audit.
        backbones: backbones to use (default: every backbone of the dataset; all must be complete).
        meta: attribute columns stored with ``--meta-column`` to test as shortcuts.
        k_mad: the duplicate threshold's k (default :data:`~embedstore.auditing.duplicates.K_MAD`).
        search: nearest-neighbour search, "auto", "exact", "flat" or "ivf"
            (:mod:`embedstore.auditing.search`).
        top: suspected label errors listed per backbone.
        device: "cpu", "cuda", "cuda:N" or "auto": the probes' and the search's device.
        progress: called with (step, done, total) after each step.
    """
    from embedstore.auditing.search import resolve_method
    from embedstore.store import Store, open_store

    if not isinstance(store, Store):
        if not isinstance(store, (str, os.PathLike)):
            raise InvalidDataError(f"store must be a Store or a path; got {type(store).__name__}")
        store = open_store(store)
    from embedstore.auditing.duplicates import K_MAD
    from embedstore.devices import resolve_device

    k = K_MAD if k_mad is None else float(k_mad)
    device = resolve_device(device)
    resolve_method(search, 1, device)  # an unknown method raises here
    names, ctx = _check(store, dataset, backbones, list(meta), k, top)
    from embedstore.auditing._run import run_audit

    return run_audit(store, dataset, names, ctx["info"], list(meta), k=k, search=search,
                     top=int(top), device=device, seed=seed, progress=progress)  # fmt: skip

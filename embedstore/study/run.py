"""A study file → a plan on the engine → records; and what a study has done and has left.

``run_study`` checks the whole file (keys, values, stores, datasets, backbones, protocols against
each dataset) before any cell runs, then runs the plan with :func:`embedstore.engine.run_plan`:
resumable, over ``workers`` processes or torchrun ranks, one lock on the results file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embedstore.engine import Part, Plan, probe_part, run_plan, sweep_part
from embedstore.errors import EmbedstoreError, InvalidDataError
from embedstore.probes.options import ProbeOptions
from embedstore.results.records import ProbeResult, read_jsonl
from embedstore.study.spec import StudySpec, read_study

__all__ = ["StudyStatus", "plan_study", "run_study", "study_status"]


def _part(spec: StudySpec, d, k: int, pr) -> Part:
    options = ProbeOptions(**{**spec.options, **pr.options})
    flags = {
        "methods": "methods",
        "selection": "selection",
        "protocol": "preset",
        "command": "a [[protocols]] entry with {}",
    }
    kind = "sweep" if (pr.fractions or pr.shots) else "probe"
    if pr.preset is not None:
        from embedstore.probes.presets import get_protocol

        kind = get_protocol(pr.preset).command
    if kind == "probe":
        if pr.fractions or pr.shots or pr.selection:
            raise InvalidDataError(
                f"preset '{pr.preset}' is a probe on the dataset's splits: leave out "
                "fractions, shots and selection"
            )
        return probe_part(
            d.store, d.dataset, spec.feature_sets, pr.methods or "all", options, protocol=pr.preset
        )
    from embedstore.engine.plan import apply_preset, label_settings

    settings = label_settings(pr.fractions, pr.shots)
    apply_preset(  # the study's spelling of a contradiction (methods, not --methods)
        "sweep",
        pr.preset,
        methods=pr.methods,
        selection=pr.selection,
        settings=settings,
        options=options,
        flags=flags,
    )
    how = {"methods": pr.methods, "selection": pr.selection, "options": options}
    how |= {"protocol": pr.preset, "on_missing": spec.on_missing}
    return sweep_part(d.store, d.dataset, spec.feature_sets, settings, spec.seeds, how)


def plan_study(spec: StudySpec) -> Plan:
    """The plan of a study: datasets (outer) × protocols; every part checked against its data."""
    from embedstore.engine.cells import prepare
    from embedstore.store import open_store

    parts, stores = [], {}
    for i, d in enumerate(spec.datasets, 1):
        where = f"{spec.path}: [[datasets]] #{i} ({d.dataset} in {d.store})"
        try:
            if d.store not in stores:
                stores[d.store] = open_store(d.store)
        except EmbedstoreError as exc:
            raise InvalidDataError(f"{where}: {exc}") from None
        for k, pr in enumerate(spec.protocols, 1):
            try:
                part = _part(spec, d, k, pr)
                part = Part(**{**part.__dict__, "store": stores[d.store]})
                prepare(part, stores[d.store], on_skip=lambda m, why: None)
            except EmbedstoreError as exc:
                raise InvalidDataError(f"{where}, [[protocols]] #{k}: {exc}") from None
            parts.append(part)
    return Plan(tuple(parts))


def run_study(
    study: str | os.PathLike[str] | StudySpec,
    *,
    workers: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    on_record: Callable[[ProbeResult], None] | None = None,
    predictions: bool = False,
) -> list[ProbeResult]:
    """Run (or resume) a study; its records, in plan order, are also in the study's ``out``
    (and, with ``predictions``, every record's per-image predictions beside it)."""
    spec = study if isinstance(study, StudySpec) else read_study(study)
    plan = plan_study(spec)
    return run_plan(
        plan,
        out=spec.out,
        workers=workers,
        progress=progress,
        on_skip=on_skip,
        on_record=on_record,
        predictions=predictions,
    )


@dataclass(frozen=True)
class StudyStatus:
    """What a study holds: cells in all, done, to do, and the time the rest should take."""

    name: str
    out: str
    total: int
    done: int
    not_computed: int
    skipped: int
    seconds_left: float | None  # from the cells already timed, per method; None: none timed
    per_dataset: dict[str, dict[str, int]]

    @property
    def todo(self) -> int:
        return self.total - self.done

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "todo": self.todo}


def study_status(study: str | os.PathLike[str] | StudySpec) -> StudyStatus:
    """Count the study's cells, those already in its results file, and estimate the rest."""
    from embedstore.engine.runner import cell_ids, plan_units, prepare_plan

    spec = study if isinstance(study, StudySpec) else read_study(study)
    prepared = prepare_plan(plan_study(spec), on_skip=lambda m, why: None)
    have = {r.record_id: r for r in read_jsonl(spec.out) if r.record_id}
    total = done = 0
    per: dict[str, dict[str, int]] = {}
    left_by_method: dict[str, int] = {}
    for u in plan_units(prepared):
        ids = cell_ids(prepared, u)
        n_done = len(ids & set(have))
        ds = per.setdefault(prepared[u.part].part.dataset, {"total": 0, "done": 0})
        ds["total"] += len(ids)
        ds["done"] += n_done
        total += len(ids)
        done += n_done
        for m in u.method.split(","):
            left_by_method[m] = left_by_method.get(m, 0) + (len(ids) - n_done) // len(
                u.method.split(",")
            )
    timed: dict[str, list[float]] = {}
    for r in have.values():
        if r.seconds is not None:
            timed.setdefault(r.method, []).append(r.seconds)
    seconds_left: float | None = None
    if timed:
        overall = sum(map(sum, timed.values())) / sum(map(len, timed.values()))
        seconds_left = sum(
            n * (sum(timed[m]) / len(timed[m]) if m in timed else overall)
            for m, n in left_by_method.items()
        )
    return StudyStatus(
        name=spec.name,
        out=str(spec.out),
        total=total,
        done=done,
        not_computed=sum(r.status == "not computed" for r in have.values()),
        skipped=sum(r.status == "skipped" for r in have.values()),
        seconds_left=seconds_left,
        per_dataset=per,
    )

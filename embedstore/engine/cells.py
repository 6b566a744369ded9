"""From a plan's part to cells: the dataset side prepared once, then one cell per (feature set,
method, label setting, seed), each turned into a record by the method registry.

:func:`prepare` reads what a part needs without any embeddings (labels, splits, groups, the rows
every backbone holds), resolves names, checks every method against the data and draws the
labelled subsets: a plan is checked whole before a feature is read. :func:`run_unit` then runs
the cells of one (feature set, method) on its loaded features.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.data.subsets import LabelSetting, LabelSubset, labelled_subsets
from embedstore.engine.plan import Part, cell_id
from embedstore.engine.records import cell_cache_key, run_cell, test_proba
from embedstore.errors import CellFailedError, EmbedstoreError, ProtocolError
from embedstore.names import resolve_backbone
from embedstore.probes.features import FeatureSet, LabelledData, load_features, load_labelled_data
from embedstore.probes.method import Cell, Method, parse_methods
from embedstore.probes.selection import pool_and_val, selection_split
from embedstore.results.records import ProbeResult

__all__ = [
    "Prepared",
    "Unit",
    "open_store_of",
    "prepare",
    "run_unit",
    "skipped_record",
    "unit_features",
]


@dataclass
class Prepared:
    """A part with its dataset side read and checked: what every cell of it needs."""

    part: Part
    store: Any
    data: LabelledData  # None only in a part with no feature set to run (it has no cells)
    sets: list[tuple[str, ...]]  # resolved feature sets that run
    methods: list[Method]
    is_all: bool
    settings: list[LabelSetting | None]
    subsets: dict[int, list[LabelSubset]] = field(default_factory=dict)
    pool: np.ndarray | None = None
    val: np.ndarray | None = None
    val_desc: str = "val"
    skipped_sets: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    memo: dict[str, Any] = field(default_factory=dict)

    def runs(self, method: Method, fs: tuple[str, ...]) -> bool:
        """'all' trains DVME on fusions only (on one backbone it is an MLP, not a fusion head)."""
        return not (self.is_all and method.fusion_only_in_all and len(fs) < 2)


@dataclass(frozen=True)
class Unit:
    """The cells of one (part, feature set, method): what one worker runs on one load of features."""

    part: int
    fs: int
    method: str
    cells: tuple[tuple[int, int], ...]  # (setting index, seed)


def prepare(part: Part, store: Any, on_skip: Callable[[str, str], None] | None = None) -> Prepared:
    """Read and check the dataset side of ``part``; raise before any cell runs when it cannot.

    Under ``methods='all'`` a method that cannot run on this data is skipped through ``on_skip``
    (method, reason); a method named explicitly raises. Under ``on_missing='skip'`` a feature set
    with a backbone the dataset lacks is left out and listed in ``skipped_sets``.
    """
    sets, skipped = list(part.feature_sets), []
    if part.on_missing == "skip":
        stored = store.backbones(part.dataset)
        keep = []
        for fs in sets:
            try:
                for b in fs:
                    resolve_backbone(b, stored, dataset=part.dataset)  # raises when absent
                keep.append(fs)
            except EmbedstoreError as exc:  # an absent backbone: recorded, not fatal
                skipped.append((tuple(fs), f"not in dataset '{part.dataset}': {exc}"))
        sets = keep
    resolved: list[tuple[str, ...]] = []
    if not sets:
        data = None
    else:
        data, resolved = load_labelled_data(
            store, part.dataset, sets, normalize=part.options.normalize
        )
    if data is None:
        # a part whose feature sets are all absent: skipped records only, no cell reads data
        return Prepared(part, store, None, [], [], False, [], skipped_sets=skipped)  # type: ignore[arg-type]
    sweep = part.settings is not None
    methods, is_all = parse_methods(part.methods, data.task, sweep=sweep)
    if not len(data.indices("test")):
        what = "sweeps" if sweep else "probes"
        raise ProtocolError(
            f"dataset '{part.dataset}' has no test rows; {what} score on the test split"
        )
    from embedstore.devices import resolve_device

    options = replace(part.options, device=resolve_device(part.options.device))
    part = replace(part, options=options)
    prep = Prepared(part, store, data, resolved, [], is_all, [None], skipped_sets=skipped)
    for m in methods:
        try:
            m.check(data, part.options, prep.memo)
        except ProtocolError as exc:
            if not is_all:
                raise
            if on_skip is not None:
                on_skip(m.name, str(exc))
            continue
        prep.methods.append(m)
    if sweep:
        prep.pool, prep.val, prep.val_desc = pool_and_val(data, part.selection, part.options.seed)
        settings = part.settings or ()  # a sweep part always has its settings
        fractions = [float(s.value) for s in settings if s.kind == "fraction"]
        shots = [int(s.value) for s in settings if s.kind == "shots"]
        prep.subsets = {
            s: labelled_subsets(
                data.labels,
                prep.pool,
                seed=s,
                fractions=fractions or None,
                shots=shots or None,
                group=data.group,
                class_names=data.class_names,
            )
            for s in part.seeds
        }
        prep.settings = [sub.setting for sub in prep.subsets[part.seeds[0]]]
    return prep


def units(prep: Prepared, index: int) -> list[Unit]:
    """The units of a prepared part, in record order (feature set, method, setting, seed).

    When the methods share work on one labelled subset (the Nielsen classifiers share the power
    transform and PCA of a subset) they form one unit per feature set.
    """
    out = []
    cells = tuple((i, s) for i in range(len(prep.settings)) for s in prep.part.seeds)
    for j, fs in enumerate(prep.sets):
        chosen = [m for m in prep.methods if prep.runs(m, fs)]
        if len(chosen) > 1 and all(getattr(m, "shares_subset", False) for m in chosen):
            out.append(Unit(index, j, ",".join(m.name for m in chosen), cells))
        else:
            out += [Unit(index, j, m.name, cells) for m in chosen]
    return out


def record_id(prep: Prepared, fs: tuple[str, ...], method: str, i: int, seed: int) -> str:
    return cell_id(
        prep.part.location,
        prep.data.dataset,
        fs,
        method,
        prep.settings[i],
        seed,
        prep.part.selection,
        prep.part.options,
    )


def _cell(prep: Prepared, features: FeatureSet, method: Method, i: int, seed: int, shared) -> Cell:
    data, opts = prep.data, prep.part.options
    if prep.settings[i] is None:  # probe: the published protocol on the full labels
        tr, val, val_desc = selection_split(data, opts.seed)
        if method.probe_selection == "val":
            labelled, fit_on = tr, ("train+val" if method.refit_on_val else "train")
        else:
            labelled = np.concatenate([data.indices("train"), data.indices("val")])
            fit_on = "train+val"
        where: dict[str, Any] = {"pool": labelled, "selection": method.probe_selection}
        where |= {"refit": method.refit_on_val, "seed": opts.seed, "subset": None}
    else:  # sweep: a labelled subset of train, the sweep's selection rule
        sub = prep.subsets[seed][i]
        assert prep.val is not None and prep.pool is not None  # set for every sweep part
        labelled, val, val_desc, fit_on = (
            sub.positions,
            prep.val,
            prep.val_desc,
            "labelled subset of train",
        )
        where = {"pool": prep.pool, "selection": prep.part.selection}
        where |= {"refit": False, "seed": sub.seed, "subset": sub}
    return Cell(
        data=data,
        features=features,
        labelled=labelled,
        val=val,
        val_desc=val_desc,
        test=data.indices("test"),
        options=opts,
        fit_on=fit_on,
        memo=prep.memo,
        shared=shared,
        **where,
    )


def run_unit(
    prep: Prepared,
    unit: Unit,
    features: FeatureSet,
    shared: dict[str, Any],
    *,
    done: set[str],
    emit: Callable[[ProbeResult], None],
    predictions: Path | None = None,
) -> None:
    """Run the cells of ``unit`` not in ``done`` and hand each record to ``emit`` as it finishes.

    Identical labelled subsets (100% under every seed) are computed once. A cell that cannot be
    computed (:class:`CellFailedError`) becomes a record with ``status="not computed"`` and its
    reason; the other cells go on. With ``predictions`` (a folder), every record's per-image
    test predictions are written there (:mod:`embedstore.results.predictions`) before the
    record is handed on.
    """
    from embedstore.probes.method import get_method

    methods = [get_method(n) for n in unit.method.split(",")]
    fs = prep.sets[unit.fs]
    reuse: dict = {}
    order = [(m, i, s) for i, s in unit.cells for m in methods]
    if len(methods) == 1 or not all(getattr(m, "shares_subset", False) for m in methods):
        order = [(m, i, s) for m in methods for i, s in unit.cells]
    for method, i, seed in order:
        rid = record_id(prep, fs, method.name, i, seed)
        if rid in done:
            continue
        t0 = time.perf_counter()
        cell = _cell(prep, features, method, i, seed, shared)
        try:
            if prep.settings[i] is None:
                outcome = method.run(cell)
            else:
                rk = cell_cache_key(method, cell)
                if rk not in reuse:
                    reuse[rk] = method.run(cell)
                outcome = reuse[rk]
            record = run_cell(method, cell, outcome)
        except CellFailedError as exc:
            record, outcome = not_computed(prep, fs, method.name, i, seed, str(exc)), None
        if predictions is not None and outcome is not None and outcome.proba is not None:
            _save_predictions(predictions, rid, cell, outcome)
        emit(_finish(record, prep, rid, time.perf_counter() - t0))


def _save_predictions(folder: Path, rid: str, cell: Cell, outcome) -> None:
    from embedstore.results.predictions import write_predictions

    data = cell.data
    write_predictions(
        folder,
        rid,
        ids=data.ids[cell.test],
        groups=None if data.group is None else data.group[cell.test],
        y_true=data.labels[cell.test],
        proba=test_proba(outcome, data),
        class_names=data.class_names,
        task=data.task,
    )


def _finish(record: ProbeResult, prep: Prepared, rid: str, seconds: float) -> ProbeResult:
    return replace(
        record,
        kind=prep.part.kind,
        record_id=rid,
        store=prep.part.location,
        seconds=round(seconds, 4),
    )


def not_computed(
    prep: Prepared, fs: tuple[str, ...], method: str, i: int, seed: int, reason: str
) -> ProbeResult:
    """The record of a cell that could not be computed: no metrics, the reason."""
    setting = prep.settings[i]
    return ProbeResult(
        dataset=prep.part.dataset,
        features=tuple(fs),
        method=method,
        protocol={"selection": prep.part.selection},
        metrics={},
        hyperparameters={},
        selected_on="none",
        seed=int(seed),
        n_train=0,
        n_test=0,
        labels={} if setting is None else setting.record(),
        kind=prep.part.kind,
        record_id=record_id(prep, fs, method, i, seed),
        store=prep.part.location,
        status="not computed",
        reason=reason,
    )


def skipped_record(part: Part, fs: tuple[str, ...], reason: str) -> ProbeResult:
    """The record of a feature set a study skipped (``on_missing = "skip"``)."""
    rid = cell_id(part.location, part.dataset, fs, "*", None, 0, part.selection, part.options)
    return ProbeResult(
        dataset=part.dataset,
        features=tuple(fs),
        method="*",
        protocol={"selection": part.selection},
        metrics={},
        hyperparameters={},
        selected_on="none",
        seed=0,
        n_train=0,
        n_test=0,
        kind=part.kind,
        record_id=rid,
        store=part.location,
        status="skipped",
        reason=reason,
    )


def open_store_of(store: Any) -> Any:
    """A part's store: opened from its location, or the Store object it holds."""
    if isinstance(store, str):
        from embedstore.store import open_store

        return open_store(store)
    return store


def unit_features(prep: Prepared, fs_index: int, loaded: dict) -> tuple[FeatureSet, dict]:
    """The features of one (part, feature set), keeping only the last one loaded."""
    key = (id(prep), fs_index)
    if key not in loaded:
        loaded.clear()  # one (dataset, feature set) in memory at a time
        (features,) = load_features(
            prep.store, prep.data, [prep.sets[fs_index]], normalize=prep.part.options.normalize
        )
        loaded[key] = (features, {})
    return loaded[key]

"""Plans: what an evaluation runs, as data, before anything runs.

A :class:`Plan` is a list of :class:`Part` s, one per (store, dataset) and protocol: feature sets ×
methods (or a preset) × label settings × seeds. ``probe`` is a plan of one part whose setting is
"all labels" (the dataset's own splits); ``sweep`` a plan of one part over labelled subsets;
``study`` a plan of many parts. The runner (:mod:`embedstore.engine.runner`) expands a plan into
cells and runs them; presets are applied here, in :func:`apply_preset`, and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from embedstore.data.subsets import LabelSetting, check_fractions, check_shots
from embedstore.errors import InvalidDataError
from embedstore.probes.options import ProbeOptions
from embedstore.probes.selection import check_selection

__all__ = ["Part", "Plan", "apply_preset", "cell_id", "probe_part", "sweep_part"]

SWEEP_DEFAULT_METHODS = ("knn", "logreg")


@dataclass(frozen=True)
class Part:
    """One (store, dataset) × one protocol of a plan.

    ``store`` is an open :class:`~embedstore.store.Store` or its location (worker processes open
    it again). ``settings`` is None for a probe (all labels, the dataset's splits), else the label
    settings of a sweep. ``methods`` is 'all' or method names.
    """

    store: Any
    dataset: str
    feature_sets: tuple[tuple[str, ...], ...]
    methods: str | tuple[str, ...]
    settings: tuple[LabelSetting, ...] | None
    seeds: tuple[int, ...]
    selection: str
    options: ProbeOptions
    on_missing: str = (
        "error"  # "skip": a feature set absent from the dataset is recorded as skipped
    )

    @property
    def kind(self) -> str:
        return "probe" if self.settings is None else "sweep"

    @property
    def location(self) -> str:
        return self.store if isinstance(self.store, str) else str(self.store.location)


@dataclass(frozen=True)
class Plan:
    parts: tuple[Part, ...]


def _names(methods: str | Sequence[str]) -> list[str]:
    parts = methods.split(",") if isinstance(methods, str) else methods
    return [m.strip() for m in parts if m.strip()]


def apply_preset(
    kind: str,
    protocol: str | None,
    *,
    methods: str | Sequence[str] | None,
    selection: str | None,
    settings: Sequence[LabelSetting] | None,
    options: ProbeOptions,
    flags: dict[str, str] | None = None,
) -> tuple[str | Sequence[str] | None, str | None, Sequence[LabelSetting] | None, ProbeOptions]:
    """A preset's methods, selection, label settings and options; a contradiction raises.

    ``kind`` is "probe" or "sweep" (a preset belongs to one); ``flags`` names how the caller's
    interface spells each choice (``--method`` on the command line, ``methods`` in a study file).
    """
    if protocol is None:
        return methods, selection, settings, options
    from embedstore.probes.presets import get_protocol

    flags = {
        "methods": "--method" if kind == "probe" else "--methods",
        "selection": "--selection",
        "protocol": "--protocol",
        "command": "`embedstore {} ...",
    } | (flags or {})
    p = get_protocol(protocol)
    if p.command != kind:
        what = (
            "a label-efficiency sweep"
            if p.command == "sweep"
            else "a probe protocol (one evaluation on the dataset's splits)"
        )
        raise InvalidDataError(
            f"protocol '{protocol}' is {what}: run "
            f"{flags['command'].format(p.command)} --protocol {protocol}`"
        )
    if methods is not None and methods != "all" and _names(methods) != list(p.methods):
        raise InvalidDataError(
            f"protocol '{protocol}' runs {', '.join(p.methods)}; leave out {flags['methods']} "
            f"(or drop {flags['protocol']} to choose methods)"
        )
    if kind == "sweep" and selection is not None and selection != p.selection:
        raise InvalidDataError(
            f"protocol '{protocol}' selects hyper-parameters by '{p.selection}'; "
            f"leave out {flags['selection']}"
        )
    if kind == "sweep" and not settings:
        settings = [LabelSetting("fraction", float(v)) for v in p.subsets.get("fractions", ())]
        settings += [LabelSetting("shots", int(v)) for v in p.subsets.get("shots", ())]
    options = replace(options, **p.options, preset=protocol)
    return tuple(p.methods), (p.selection if kind == "sweep" else selection), settings, options


def probe_part(
    store: Any,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    methods: str | Sequence[str] = "all",
    options: ProbeOptions | None = None,
    *,
    protocol: str | None = None,
) -> Part:
    """The probe of ``feature_sets`` × ``methods`` on the dataset's splits (all labels)."""
    opts = options or ProbeOptions()
    chosen, _, _, opts = apply_preset(
        "probe", protocol, methods=methods, selection=None, settings=None, options=opts
    )
    return Part(
        store=store,
        dataset=dataset,
        feature_sets=_feature_sets(feature_sets),
        methods=_methods(chosen if chosen is not None else "all"),
        settings=None,
        seeds=(opts.seed,),
        selection="probe",
        options=opts,
    )


def sweep_part(
    store: Any,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    settings: Sequence[LabelSetting],
    seeds: int | Sequence[int],
    how: dict[str, Any],
) -> Part:
    """A label-efficiency sweep of ``feature_sets`` on one dataset (see
    :func:`embedstore.engine.sweep.run_sweep` for the meaning of each choice).

    ``settings``: from :func:`label_settings` (fractions, shots; none with a preset that sets
    them); ``how``: ``methods``, ``selection``, ``options``, ``protocol`` and ``on_missing``, each
    optional.
    """
    methods, selection = how.get("methods"), how.get("selection")
    protocol, on_missing = how.get("protocol"), how.get("on_missing", "error")
    opts = how.get("options") or ProbeOptions()
    if selection is not None:
        check_selection(selection)
    methods, selection, chosen_settings, opts = apply_preset(
        "sweep", protocol, methods=methods, selection=selection, settings=settings, options=opts
    )
    settings = list(chosen_settings or ())
    selection = "train-cv" if selection is None else selection  # a preset's may be "none"
    if not settings:
        raise InvalidDataError("give label fractions (--fractions) or shots per class (--shots)")
    return Part(
        store=store,
        dataset=dataset,
        feature_sets=_feature_sets(feature_sets),
        methods=_methods(SWEEP_DEFAULT_METHODS if methods is None else methods),
        settings=tuple(settings),
        seeds=seed_list(seeds),
        selection=selection,
        options=opts,
        on_missing=on_missing,
    )


def label_settings(
    fractions: Sequence[float] | None, shots: Sequence[int] | None
) -> list[LabelSetting]:
    """Fractions then shots, each checked (in (0, 1]; whole numbers >= 1)."""
    out = (
        [LabelSetting("fraction", float(f)) for f in check_fractions(fractions)]
        if fractions
        else []
    )
    return out + [LabelSetting("shots", int(s)) for s in check_shots(shots)] if shots else out


def seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """A count (0..n-1) or the seeds themselves; distinct, non-negative."""
    if isinstance(seeds, bool):
        raise InvalidDataError(f"seeds must be a positive count or distinct seeds; got {seeds!r}")
    if isinstance(seeds, int):
        out = list(range(seeds))
    else:
        try:
            out = [int(s) for s in seeds]
        except (TypeError, ValueError):
            out = []
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise InvalidDataError(
            f"seeds must be a positive count or distinct non-negative seeds; got {seeds!r}"
        )
    return tuple(out)


def _feature_sets(feature_sets: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    if isinstance(feature_sets, str) or not feature_sets:
        raise InvalidDataError("give at least one backbone (--backbone) or fusion (--fuse)")
    return tuple(tuple(fs) for fs in feature_sets)


def _methods(methods: str | Sequence[str]) -> str | tuple[str, ...]:
    if isinstance(methods, str) and methods.strip() == "all":
        return "all"
    names = tuple(dict.fromkeys(_names(methods)))
    if not names:
        from embedstore.probes.method import method_names

        raise InvalidDataError(f"give at least one method: {', '.join(method_names())}")
    return names


def cell_id(
    store: str,
    dataset: str,
    features: Sequence[str],
    method: str,
    setting: LabelSetting | None,
    seed: int,
    selection: str,
    options: ProbeOptions,
) -> str:
    """A cell's identity: equal ids mean the same computation (the resume key of every run).

    The store (a local one by its absolute path) and the options are part of it: a second run
    with another k, or the same dataset name in another store, is not the same cell. The device
    is not (it changes where a cell runs, not what it computes).
    """
    opts = {k: v for k, v in asdict(options).items() if k != "device"}
    where = store if "://" in store else os.path.abspath(store)
    key: list[Any] = [where, dataset, list(features), method]
    key += [list(setting) if setting else "all labels"]
    key += [int(seed), selection, opts]
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]

"""`evaluate_probes`: every requested method on every feature set, on the full labels, as records.

Each method runs its published protocol (:mod:`embedstore.probes.methods`; the protocol is named
in every record): proto and knn learn from train+val with their fixed settings (k = 20); logreg
chooses C on the validation split (the dataset's own, else a fixed-seed 20% of train) and is
refit on train+val; dvme early-stops on it; fewshot draws its episodes once from the test split's
labels, shared by every feature set (paired). Everything is scored on the test split.

With ``methods="all"`` a method that cannot run on this data (e.g. 20-shot episodes on a small
test split) is skipped with one line saying why, and every feasible one still runs; the protocol
is never changed to fit (no fewer shots).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.features import FeatureSet, LabelledData, load_feature_sets
from embedstore.probes.registry import (
    Cell,
    Method,
    ProbeOptions,
    parse_methods,
    resolve_device,
    run_cell,
)
from embedstore.probes.selection import selection_split
from embedstore.report import ProbeResult
from embedstore.store import Store

__all__ = [
    "METHODS",
    "ProbeOptions",
    "evaluate_probes",
    "probe_cell",
    "resolve_methods",
    "selection_split",
]

METHODS = ("proto", "fewshot", "knn", "logreg", "dvme")  # the built-in ones, in registry order


def resolve_methods(method: str, task: str, *, has_fusion: bool) -> list[str]:
    """'all' -> the method names that apply to this task; named ones are checked (kept for API)."""
    chosen, is_all = parse_methods(method, task)
    return [m.name for m in chosen if has_fusion or not (is_all and m.fusion_only_in_all)]


def probe_cell(
    method: Method, fs: FeatureSet, data: LabelledData, opts: ProbeOptions, *, memo, shared
) -> Cell:
    """The cell of a method's published protocol on the full labels of ``data``."""
    test = data.indices("test")
    tr, va, desc = selection_split(data, opts.seed)
    if method.probe_selection == "val":
        labelled, fit_on = tr, ("train+val" if method.refit_on_val else "train")
    else:
        labelled = np.concatenate([data.indices("train"), data.indices("val")])
        fit_on = "train+val"
    return Cell(
        data=data,
        features=fs,
        labelled=labelled,
        val=va,
        val_desc=desc,
        test=test,
        pool=labelled,
        selection=method.probe_selection,
        refit=method.refit_on_val,
        seed=opts.seed,
        options=opts,
        fit_on=fit_on,
        memo=memo,
        shared=shared,
    )


def evaluate_probes(
    store: Store,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    methods: Sequence[str] | str = "all",
    options: ProbeOptions | None = None,
    *,
    progress: Callable[[str, str], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    protocol: str | None = None,
) -> list[ProbeResult]:
    """Run each method on each feature set; one record per (feature set, method).

    Args:
        feature_sets: single backbones and fusions, e.g. [["a"], ["b"], ["a", "b"]].
        methods: names (a list or a comma list), or 'all' (those that apply to the task; DVME
            on fusions only: on one backbone it is an MLP, not a fusion head).
        progress: called with (feature set name, method) before each evaluation.
        on_skip: under 'all', called with (method, reason) for each method that cannot run on
            this data (default: a warning); a method asked for by name raises instead.
        protocol: a probe preset (``embedstore protocols``: ericsson-fewshot, ericsson-linear,
            dinov2-linear, dino-knn): its methods and options; records name it.
    """
    opts = options or ProbeOptions()
    if protocol is not None:
        from embedstore.protocols import get_protocol

        p = get_protocol(protocol)
        if p.command != "probe":
            raise InvalidDataError(
                f"protocol '{protocol}' is a label-efficiency sweep: run "
                f"`embedstore sweep ... --protocol {protocol}`"
            )
        if methods not in ("all", list(p.methods), ",".join(p.methods)):
            raise InvalidDataError(
                f"protocol '{protocol}' runs {', '.join(p.methods)}; leave out --method"
            )
        methods = list(p.methods)
        opts = ProbeOptions(**{**opts.__dict__, **p.options, "preset": protocol})
    opts = ProbeOptions(**{**opts.__dict__, "device": resolve_device(opts.device)})
    data, sets = load_feature_sets(store, dataset, feature_sets, normalize=opts.normalize)
    chosen, is_all = parse_methods(methods, data.task)
    if not len(data.indices("test")):
        raise ProtocolError(f"dataset '{dataset}' has no test rows; probes score on the test split")
    memo: dict = {}
    runnable = []
    for m in chosen:
        try:
            m.check(data, opts, memo)
        except ProtocolError as exc:
            if not is_all:
                raise
            (on_skip or _warn_skip)(m.name, str(exc))
            continue
        runnable.append(m)
    results = []
    for fs in sets:
        shared: dict = {}
        for m in runnable:
            if is_all and m.fusion_only_in_all and not fs.is_fusion:
                continue
            if progress:
                progress(fs.name, m.name)
            results.append(run_cell(m, probe_cell(m, fs, data, opts, memo=memo, shared=shared)))
    return results


def _warn_skip(method: str, reason: str) -> None:
    warnings.warn(f"{method} skipped: {reason}", stacklevel=3)

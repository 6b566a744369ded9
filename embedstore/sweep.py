"""Label-efficiency sweeps: label fractions or shots × seeds × feature sets × methods.

One record (:class:`~embedstore.report.ProbeResult`, ``labels`` filled) per cell (feature set,
method, label setting, seed):

- Labelled subsets come from the training split (:mod:`embedstore.data.subsets`): stratified,
  group-aware, nested and identical for every feature set, so comparisons are paired by seed.
- The labelled subset is the only training data; scoring is always on the whole test split.
- Hyper-parameters are chosen by the ``selection`` rule (:mod:`embedstore.probes.selection`):
  ``"train-cv"`` (default, honest at low labels: CV inside the labelled subset, folds drawn from
  ``options.seed``) or ``"val"`` (the published protocol: the full validation split, which under
  'val' without a validation split is a fixed 20% of train, left out of the pool).
- Each cell is handed to its method (:mod:`embedstore.probes.registry`); identical subsets
  (100% under every seed) are computed once. Per feature set the methods share a cache (one
  test × pool similarity matrix for kNN, when it fits its memory budget).
- ``out``: records are appended as each cell finishes; cells already there are skipped (resume).
- ``protocol``: a preset (:mod:`embedstore.protocols`, e.g. ``"nielsen"``) sets the methods, the
  label settings, the selection rule (``"none"``: fixed hyper-parameters) and options; every
  record names it (``protocol["preset"]``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from embedstore.data.subsets import LabelSetting, labelled_subsets
from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.features import load_feature_sets
from embedstore.probes.methods import DEFAULT_C, KNN_K_GRID
from embedstore.probes.registry import (
    Cell,
    ProbeOptions,
    cell_cache_key,
    parse_methods,
    resolve_device,
    run_cell,
)
from embedstore.probes.selection import (
    HOLDOUT_ABOVE,
    MAX_CV_FOLDS,
    SELECTIONS,
    check_selection,
    cv_folds,
    pool_and_val,
)
from embedstore.report import ProbeResult, read_jsonl, write_jsonl
from embedstore.store import Store

__all__ = [
    "DEFAULT_C",
    "HOLDOUT_ABOVE",
    "KNN_K_GRID",
    "MAX_CV_FOLDS",
    "SELECTIONS",
    "SWEEP_METHODS",
    "cell_key",
    "cv_folds",
    "run_sweep",
]

SWEEP_METHODS = ("knn", "logreg", "proto", "dvme", "svm")  # built in (method_names(sweep=True))

Progress = Callable[[int, int, str], None]


def cell_key(
    dataset: str,
    features: Sequence[str],
    method: str,
    setting: LabelSetting,
    seed: int,
    selection: str,
) -> tuple:
    """What identifies one sweep cell (and matches a record already in the results file)."""
    return (dataset, tuple(features), method, LabelSetting(*setting), int(seed), selection)


def _record_key(r: ProbeResult) -> tuple | None:
    setting = LabelSetting.from_record(r.labels)
    selection = r.protocol.get("selection")
    if setting is None or selection is None:
        return None
    return cell_key(r.dataset, r.features, r.method, setting, r.seed, selection)


def run_sweep(
    store: Store,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    *,
    fractions: Sequence[float] | None = None,
    shots: Sequence[int] | None = None,
    seeds: int | Sequence[int] = 5,
    methods: str | Sequence[str] | None = None,
    selection: str | None = None,
    options: ProbeOptions | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    protocol: str | None = None,
) -> list[ProbeResult]:
    """Every (feature set, method, label setting, seed) cell as one probe record.

    Args:
        feature_sets: single backbones and fusions, e.g. [["a"], ["b"], ["a", "b"]].
        fractions: label fractions in (0, 1]; shots: labelled samples per class (either or both).
        seeds: a number of seeds (0..n-1) or the seeds themselves.
        methods: names (a list or a comma list) from ``method_names(sweep=True)``, or 'all'
            (default: knn and logreg, or the preset's; 'all': DVME on fusions only).
        selection: "train-cv" (default) or "val" (the published protocol); see the module doc.
        protocol: a preset name (``embedstore protocols``); it sets methods, settings (unless
            fractions or shots are given), selection and options, and may not be contradicted.
        options: probe options (device, normalisation, logistic grid, kNN temperature and
            default k, bootstrap replicates for the per-cell CIs, the CV fold seed).
        out: a JSON-lines file: cells already in it are skipped, new records appended.
        progress: called as ``progress(done, total, description)`` after each cell.

    Returns:
        One record per cell, in the order feature set, method, setting, seed (records read back
        from ``out`` included).
    """
    opts = options or ProbeOptions()
    if protocol is not None:  # a preset's selection may be "none" (fixed hyper-parameters)
        methods, selection, fractions, shots, opts = _apply_preset(
            protocol, methods, selection, fractions, shots, opts
        )
    else:
        selection = "train-cv" if selection is None else check_selection(selection)
    methods = ("knn", "logreg") if methods is None else methods
    opts = ProbeOptions(**{**opts.__dict__, "device": resolve_device(opts.device)})
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise InvalidDataError(f"seeds must be a positive count or distinct seeds; got {seeds!r}")
    data, sets = load_feature_sets(store, dataset, feature_sets, normalize=opts.normalize)
    chosen, is_all = parse_methods(methods, data.task, sweep=True)
    test = data.indices("test")
    if not len(test):
        raise ProtocolError(f"dataset '{dataset}' has no test rows; sweeps score on the test split")
    pool, val, val_desc = pool_and_val(data, selection, opts.seed)
    subsets = {
        s: labelled_subsets(
            data.labels,
            pool,
            seed=s,
            fractions=fractions,
            shots=shots,
            group=data.group,
            class_names=data.class_names,
        )
        for s in seed_list
    }
    done = _finished(out)

    def runs(method, fs) -> bool:  # 'all' trains DVME on fusions only, as `probe` does
        return not (is_all and method.fusion_only_in_all and not fs.is_fusion)

    per_method = len(subsets[seed_list[0]]) * len(seed_list)
    total = per_method * sum(runs(m, fs) for fs in sets for m in chosen)
    results: list[ProbeResult] = []
    settings = [sub.setting for sub in subsets[seed_list[0]]]
    for fs in sets:
        shared: dict = {}  # per feature set: the methods' caches
        reuse: dict = {}  # identical labelled subsets give identical outcomes
        start = len(results)
        for method, i, s in _cells([m for m in chosen if runs(m, fs)], len(settings), seed_list):
            setting = settings[i]
            key = cell_key(dataset, fs.backbones, method.name, setting, s, selection)
            if key not in done:
                sub = subsets[s][i]
                cell = Cell(
                    data=data,
                    features=fs,
                    labelled=sub.positions,
                    val=val,
                    val_desc=val_desc,
                    test=test,
                    pool=pool,
                    selection=selection,
                    refit=False,
                    seed=sub.seed,
                    options=opts,
                    fit_on="labelled subset of train",
                    subset=sub,
                    shared=shared,
                )
                rk = cell_cache_key(method, cell)
                if rk not in reuse:
                    reuse[rk] = method.run(cell)
                done[key] = run_cell(method, cell, reuse[rk])
                if out is not None:
                    write_jsonl([done[key]], out)
            results.append(done[key])
            if progress:
                text = f"{method.name} on {fs.name}, {setting.display()}, seed {s}"
                progress(len(results), total, text)
        order = {m.name: j for j, m in enumerate(chosen)}  # the documented order of the records
        results[start:] = sorted(results[start:], key=lambda r: order[r.method])  # stable
    return results


def _cells(chosen, n_settings: int, seeds: list[int]):
    """(method, setting index, seed) in the order cells run: method by method, or, when the
    methods share work on one labelled subset (the Nielsen classifiers share the power
    transform and PCA of a subset), subset by subset. The results file holds records in this
    order; ``run_sweep`` returns them by feature set, method, setting, seed."""
    if len(chosen) > 1 and all(getattr(m, "shares_subset", False) for m in chosen):
        return [(m, i, s) for i in range(n_settings) for s in seeds for m in chosen]
    return [(m, i, s) for m in chosen for i in range(n_settings) for s in seeds]


def _apply_preset(name, methods, selection, fractions, shots, opts: ProbeOptions):
    """The preset's methods, selection, label settings and options; a contradiction raises."""
    from embedstore.protocols import get_protocol

    p = get_protocol(name)
    if p.command != "sweep":
        raise InvalidDataError(
            f"protocol '{name}' is a probe protocol (one evaluation on the dataset's splits): "
            f"run `embedstore probe ... --protocol {name}`"
        )
    if methods is not None and list(_names(methods)) != list(p.methods):
        raise InvalidDataError(
            f"protocol '{name}' runs {', '.join(p.methods)}; leave out --methods "
            "(or drop --protocol to choose methods)"
        )
    if selection is not None and selection != p.selection:
        raise InvalidDataError(
            f"protocol '{name}' selects hyper-parameters by '{p.selection}'; leave out --selection"
        )
    if fractions is None and shots is None:
        fractions, shots = p.subsets.get("fractions"), p.subsets.get("shots")
    opts = ProbeOptions(**{**opts.__dict__, **p.options, "preset": name})
    return p.methods, p.selection, fractions, shots, opts


def _names(methods) -> list[str]:
    parts = methods.split(",") if isinstance(methods, str) else methods
    return [m.strip() for m in parts if m.strip()]


def _finished(out: str | os.PathLike[str] | None) -> dict[tuple, ProbeResult]:
    """Records already in ``out`` by cell key; a half-written last line is cut off first."""
    if out is None:
        return {}
    if os.path.exists(out):
        with open(out, "rb+") as fh:
            text = fh.read()
            if text and not text.endswith(b"\n"):
                fh.truncate(text.rfind(b"\n") + 1)
    return {key: r for r in read_jsonl(out) if (key := _record_key(r)) is not None}

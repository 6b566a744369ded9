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

SWEEP_METHODS = ("knn", "logreg", "proto", "dvme")  # the built-in ones (method_names(sweep=True))

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
    methods: str | Sequence[str] = ("knn", "logreg"),
    selection: str = "train-cv",
    options: ProbeOptions | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> list[ProbeResult]:
    """Every (feature set, method, label setting, seed) cell as one probe record.

    Args:
        feature_sets: single backbones and fusions, e.g. [["a"], ["b"], ["a", "b"]].
        fractions: label fractions in (0, 1]; shots: labelled samples per class (either or both).
        seeds: a number of seeds (0..n-1) or the seeds themselves.
        methods: names (a list or a comma list) from ``method_names(sweep=True)``, or 'all'
            (DVME then on fusions only).
        selection: "train-cv" (default) or "val" (the published protocol); see the module doc.
        options: probe options (device, normalisation, logistic grid, kNN temperature and
            default k, bootstrap replicates for the per-cell CIs, the CV fold seed).
        out: a JSON-lines file: cells already in it are skipped, new records appended.
        progress: called as ``progress(done, total, description)`` after each cell.

    Returns:
        One record per cell, in the order feature set, method, setting, seed (records read back
        from ``out`` included).
    """
    opts = options or ProbeOptions()
    opts = ProbeOptions(**{**opts.__dict__, "device": resolve_device(opts.device)})
    check_selection(selection)
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
    for fs in sets:
        shared: dict = {}  # per feature set: the methods' caches
        reuse: dict = {}  # identical labelled subsets give identical outcomes
        for method in (m for m in chosen if runs(m, fs)):
            for i, setting in enumerate(sub.setting for sub in subsets[seed_list[0]]):
                for s in seed_list:
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
    return results


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

"""Label-efficiency sweeps: label fractions or shots × seeds × feature sets × methods.

One record (:class:`~embedstore.results.records.ProbeResult`, ``labels`` filled) per cell (feature set,
method, label setting, seed):

- Labelled subsets come from the training split (:mod:`embedstore.data.subsets`): stratified,
  group-aware, nested and identical for every feature set, so comparisons are paired by seed.
- The labelled subset is the only training data; scoring is always on the whole test split.
- Hyper-parameters are chosen by the ``selection`` rule (:mod:`embedstore.probes.selection`):
  ``"train-cv"`` (default, honest at low labels: CV inside the labelled subset, folds drawn from
  ``options.seed``) or ``"val"`` (the published protocol: the full validation split, which under
  'val' without a validation split is a fixed 20% of train, left out of the pool).
- Each cell is handed to its method (:mod:`embedstore.probes.method`); identical subsets
  (100% under every seed) are computed once. Per feature set the methods share a cache (one
  test × pool similarity matrix for kNN, when it fits its memory budget).
- ``out``: records are appended as each cell finishes; cells already there are skipped (resume).
- A sweep is a plan of one part on the engine (:mod:`embedstore.engine`), as a study is a plan
  of many: the same cells, records and resume rule.
- ``protocol``: a preset (:mod:`embedstore.probes.presets`, e.g. ``"nielsen"``) sets the methods, the
  label settings, the selection rule (``"none"``: fixed hyper-parameters) and options; every
  record names it (``protocol["preset"]``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from embedstore.probes.methods.core import DEFAULT_C, KNN_K_GRID
from embedstore.probes.options import ProbeOptions
from embedstore.probes.selection import HOLDOUT_ABOVE, MAX_CV_FOLDS, SELECTIONS, cv_folds
from embedstore.results.records import ProbeResult
from embedstore.store import Store

__all__ = [
    "DEFAULT_C",
    "HOLDOUT_ABOVE",
    "KNN_K_GRID",
    "MAX_CV_FOLDS",
    "SELECTIONS",
    "cv_folds",
    "run_sweep",
]

Progress = Callable[[int, int, str], None]


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
    workers: int = 1,
    predictions: bool = False,
) -> list[ProbeResult]:
    """Every (feature set, method, label setting, seed) cell as one probe record.

    Args:
        feature_sets: single backbones and fusions, e.g. [["a"], ["b"], ["a", "b"]].
        fractions: label fractions in (0, 1]; shots: labelled samples per class (either or both).
        seeds: a number of seeds (0..n-1) or the seeds themselves.
        methods: names (a list or a comma list) of methods that train on label subsets
            (``embedstore.probes.method.method_names(sweep=True)``), or 'all' (default: knn
            and logreg, or the preset's; 'all': DVME on fusions only).
        selection: "train-cv" (default) or "val" (the published protocol); see the module doc.
        protocol: a preset name (``embedstore protocols``); it sets methods, settings (unless
            fractions or shots are given), selection and options, and may not be contradicted.
        options: probe options (device, normalisation, logistic grid, kNN temperature and
            default k, bootstrap replicates for the per-cell CIs, the CV fold seed).
        out: a JSON-lines file: cells already in it are skipped, new records appended.
        progress: called as ``progress(done, total, description)`` after each cell.
        workers: processes to run cells in (see :func:`embedstore.engine.run_plan`).
        predictions: keep per-image test predictions beside ``out``.

    Returns:
        One record per cell, in the order feature set, method, setting, seed (records read back
        from ``out`` included).
    """
    from embedstore.engine import Plan, run_plan, sweep_part
    from embedstore.engine.plan import label_settings

    how = {"methods": methods, "selection": selection, "options": options, "protocol": protocol}
    part = sweep_part(store, dataset, feature_sets, label_settings(fractions, shots), seeds, how)
    return run_plan(
        Plan((part,)), out=out, progress=progress, workers=workers, predictions=predictions
    )

"""How hyper-parameters are chosen, in one place: splits, folds, the score and the pick rule.

Rules (``Cell.selection``; recorded in every record as ``protocol["selection"]``):

- ``"val"``: scored on validation rows (the dataset's own split, else a fixed-seed, stratified,
  patient-aware 20% of train: :func:`selection_split`). The published protocols.
- ``"train-cv"``: stratified (patient-grouped when the dataset has groups) k-fold cross-validation
  *inside the labelled subset* (:func:`cv_folds`: ``min(5, smallest class count, groups)``
  folds); methods whose every fold refits a whole grid may use only the first fold, a 20%
  hold-out, above ``HOLDOUT_ABOVE`` rows. With a class of one labelled sample no CV is possible
  and the method's documented default is used. The validation and test splits are never seen.
- ``"none"``: the method's default (fixed hyper-parameters; e.g. DINO's k = 20).

The selection score (:func:`score`) is accuracy; for **multilabel** tasks it is the mean
per-label accuracy at a 0.5 threshold, for every method. That is the "accuracy" every record
reports (``classification_metrics``), so the criterion that picks k or C is the number the tables
show; subset accuracy (all labels right), which the logistic and DVME probes used before, is near 0
for every candidate at few labels with several labels, and then picks by ties.

The pick rule (:func:`pick`): the best score; ties go to the value nearest the method's default
in log scale, or, for the published logistic protocol, to the first value in grid order
(ssl-transfer's loop).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedstore.data.splits import make_splits
from embedstore.errors import InvalidDataError, ProtocolError

if TYPE_CHECKING:
    from embedstore.probes.features import LabelledData
    from embedstore.probes.method import Cell

__all__ = [
    "HOLDOUT_ABOVE",
    "MAX_CV_FOLDS",
    "SELECTIONS",
    "Choice",
    "check_selection",
    "holdout_rows",
    "choose",
    "cv_folds",
    "pick",
    "pool_and_val",
    "score",
    "selection_split",
]

SELECTIONS = ("train-cv", "val")
MAX_CV_FOLDS = 5
HOLDOUT_ABOVE = 1000  # larger subsets: one 20% hold-out fold, not all five (cost; noise is low)


def check_selection(selection: str) -> str:
    if selection not in SELECTIONS:
        raise InvalidDataError(
            f"selection must be one of {', '.join(SELECTIONS)}; got '{selection}'"
        )
    return selection


def score(y: np.ndarray, proba: np.ndarray, *, classes: np.ndarray | None = None) -> float:
    """The selection score: accuracy; multilabel (y of shape (n, L)): mean per-label accuracy.

    ``proba`` is (n, C) with columns in the order of ``classes`` (default 0..C-1), or (n, L)
    per-label probabilities, thresholded at 0.5.
    """
    y = np.asarray(y)
    if y.ndim == 2:
        return float(((np.asarray(proba) >= 0.5) == (y > 0)).mean())
    pred = np.asarray(proba).argmax(axis=1)
    if classes is not None:
        pred = np.asarray(classes)[pred]
    return float((pred == y).mean())


def pick(
    grid: Sequence[float] | np.ndarray, scores: np.ndarray, default: float | None = None
) -> int:
    """Index of the best score; ties go to the value nearest ``default`` (log scale), or to the
    first in grid order when ``default`` is None."""
    scores = np.asarray(scores, dtype=np.float64)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    if default is None:
        return int(best[0])
    return int(min(best, key=lambda i: abs(np.log(grid[int(i)]) - np.log(default))))


def selection_split(data: LabelledData, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Training and validation positions for choosing hyperparameters.

    The dataset's own validation split when it has one; otherwise a fixed-seed 20% of train,
    stratified by class, and by patient group when the dataset has groups.
    """
    train, val = data.indices("train"), data.indices("val")
    if len(val):
        return train, val, "val"
    # The same stratified, group-aware splitter that makes a dataset's splits, asked for 80/20.
    codes = make_splits(
        data.labels[train],
        group=None if data.group is None else data.group[train],
        fractions=(0.8, 0.2, 0.0),
        seed=seed,
    )
    from embedstore.store import SPLIT_CODES  # zarr: not at import (method help lists are cheap)

    is_val = codes == SPLIT_CODES["val"]
    return train[~is_val], train[is_val], f"val (20% of train, seed {seed})"


def pool_and_val(data: LabelledData, selection: str, seed: int):
    """Rows a sweep's subsets are drawn from, and its validation rows ('val' rule and DVME).

    Under 'val' without a validation split, a fixed 20% of train becomes the validation rows and
    is left out of the pool.
    """
    train, val = data.indices("train"), data.indices("val")
    if selection == "val" and not len(val):
        return selection_split(data, seed)
    return train, val, "val"


def cv_folds(
    y: np.ndarray, group: np.ndarray | None, *, seed: int, max_folds: int = MAX_CV_FOLDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds inside a labelled subset; [] when it is too small for two folds.

    Args:
        y: (n,) labels or (n, L) 0/1 of the labelled subset.
        group: (n,) patient ids of the subset, or None.

    Returns:
        (train, held-out) position pairs into the subset. Folds = min(max_folds, smallest class
        count [multilabel: smallest positive count of a label present], number of groups).
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    n = len(y)
    if y.ndim == 2:
        counts = y.sum(axis=0)
        smallest = int(counts[counts > 0].min()) if (counts > 0).any() else n
    else:
        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    n_units = n if group is None else len(np.unique(group))
    k = min(max_folds, smallest, n_units)
    if k < 2:
        return []
    X = np.zeros((n, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when groups cannot balance every class
        if y.ndim == 2:
            splitter = (
                GroupKFold(k) if group is not None else KFold(k, shuffle=True, random_state=seed)
            )
            return list(splitter.split(X, groups=group))
        if group is not None:
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
            return list(splitter.split(X, y, groups=group))
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y))


@dataclass(frozen=True)
class Choice:
    """A chosen hyper-parameter value: ``score`` is the best selection score (None when nothing
    was scored), ``on`` says which data chose it ("val", "train-cv", "default", "none")."""

    value: Any
    score: float | None
    selected_on: str
    on: str


Evaluate = Callable[[np.ndarray, np.ndarray, Sequence[Any] | np.ndarray], np.ndarray]


def choose(
    cell: Cell,
    grid_for: Callable[[int], Sequence[Any] | np.ndarray],
    evaluate: Evaluate,
    *,
    name: str,
    default: Any,
    first_best_on_val: bool = False,
    holdout_above: int | None = None,
) -> Choice:
    """Choose one value of a grid for ``cell`` under its selection rule.

    Args:
        grid_for: the grid for a given number of training rows (e.g. k <= n).
        evaluate: ``evaluate(train_positions, eval_positions, grid)`` -> (len(grid),) scores
            (:func:`score` of a model fitted on the first, applied to the second).
        name: the hyper-parameter's name, for ``selected_on``.
        default: the value without selection, and the tie-break target.
        first_best_on_val: under "val", ties go to the first grid value (published rule).
        holdout_above: use only the first fold (a 20% hold-out) above this many labelled rows.
    """
    S = cell.labelled
    if cell.selection == "none":
        return Choice(default, None, "none", "none")
    if cell.selection == "val":
        grid = grid_for(len(S))
        scores = np.asarray(evaluate(S, cell.val, grid), dtype=np.float64)
        i = pick(grid, scores, None if first_best_on_val else default)
        return Choice(grid[i], float(scores.max()), cell.val_desc, "val")
    y = cell.data.labels
    group = None if cell.data.group is None else cell.data.group[S]
    folds = cv_folds(y[S], group, seed=cell.options.seed)
    if not folds:
        note = "a class has 1 labelled sample: no CV possible"
        return Choice(default, None, f"default {name}={default:g} ({note})", "default")
    if holdout_above is not None and len(S) > holdout_above and len(folds) == MAX_CV_FOLDS:
        folds = folds[:1]  # each fold refits the whole grid: one 20% hold-out is enough
    grid = grid_for(min(len(tr) for tr, _ in folds))
    total = np.zeros(len(grid))
    for tr, va in folds:  # held-out-size-weighted mean score over folds
        total += len(va) * np.asarray(evaluate(S[tr], S[va], grid), dtype=np.float64)
    scores = total / sum(len(va) for _, va in folds)
    desc = (
        f"train-cv ({len(folds)} folds)"
        if len(folds) > 1
        else f"train-cv (20% hold-out of {len(S)})"
    )
    return Choice(grid[pick(grid, scores, default)], float(scores.max()), desc, "train-cv")


def holdout_rows(
    targets: np.ndarray, fraction: float, seed: int, multilabel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices: ``fraction`` of each class to validation (random rows
    for multilabel), at least one validation row, every class keeping a training row."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    if n < 2:
        raise ProtocolError(f"need at least 2 rows to hold out a validation set, received {n}")
    if multilabel:
        perm = rng.permutation(n)
        k = min(max(1, int(round(fraction * n))), n - 1)
        return np.sort(perm[k:]), np.sort(perm[:k])
    val = []
    for c in np.unique(targets):
        rows = rng.permutation(np.flatnonzero(targets == c))
        val.append(rows[: min(int(round(fraction * len(rows))), len(rows) - 1)])
    va = np.concatenate(val)
    if len(va) == 0:  # tiny data: take one row of the largest class, if it can spare one
        counts = np.bincount(targets)
        if counts.max() < 2:
            raise ProtocolError(
                f"cannot hold out a validation set from {n} rows with one row per class; "
                "pass X_val and y_val, or val_fraction=0 to train without early stopping"
            )
        va = rng.permutation(np.flatnonzero(targets == counts.argmax()))[:1]
    mask = np.zeros(n, dtype=bool)
    mask[va] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)

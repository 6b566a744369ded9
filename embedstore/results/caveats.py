"""What a reader must know before trusting one result record, as the record's ``caveats`` field.

Every record (``probe`` and ``sweep``) gets ``caveats``: a dict, empty when there is nothing to
say, with these keys (machine-readable; tables turn them into markers and footnotes):

- ``capped_classes``: {class: rows drawn}: classes with fewer training rows than the shots asked
  for (all of them were drawn);
- ``uneven_classes``: {class: rows drawn}: classes whose drawn count differs from the shots asked
  for although train holds enough (whole patient groups over- or undershoot);
- ``fallback``: the hyper-parameter was not validated (too few labels for CV) and the method's
  default was used; the text of ``selected_on``;
- ``grid_edge``: {name: "lower" | "upper", "grid": [min, max]}: the chosen value is at an end of
  the grid that the optimum may lie beyond (C at either end; k at the top);
- ``k_capped``: {"asked": k, "used": n, "n_labelled": n}: kNN asked for more neighbours than there
  are labelled rows;
- ``small_test``: the number of test rows, when under ``SMALL_TEST``;
- ``absent_classes``: [class, ...]: classes (multilabel: labels) with no positive image in the
  test split: no metric says anything about them, and their AUC is not estimable
  (:func:`absent_classes` finds them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["CAVEATS", "SMALL_TEST", "absent_classes", "describe", "find_caveats"]

CAVEATS = (
    "capped_classes",
    "uneven_classes",
    "fallback",
    "grid_edge",
    "k_capped",
    "small_test",
    "absent_classes",
)
# Under this many test rows one row is over a point of accuracy, and the binomial 95% interval of
# an accuracy near 80% is wider than ±8 points.
SMALL_TEST = 100
# Ends of a grid the optimum may lie beyond: C both ways; k only upwards (k = 1 is a floor).
_EXTENDABLE = {"C": ("lower", "upper"), "k": ("upper",)}


def _validated(selected_on: str) -> bool:
    text = str(selected_on)
    return not (text == "none" or text.startswith("default"))


def find_caveats(
    *,
    labels: Mapping[str, Any],
    selected_on: str,
    hyperparameters: Mapping[str, Any],
    n_train: int,
    n_test: int,
    grid: Sequence[float] | np.ndarray = (),
    k_asked: int | None = None,
    absent: Sequence[str] = (),
    tuned: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The caveats of one record (see the module docstring); ``{}`` when there are none.

    Args:
        labels: the record's ``labels`` (per_class, capped_classes, shots or fraction).
        grid: the values the method chose its hyper-parameter from (``Method.grid``).
        k_asked: the kNN ``k`` asked for when it was not chosen by validation.
        absent: classes with no test image (:func:`absent_classes` of the test labels).
    """
    out: dict[str, Any] = {}
    per_class = dict(labels.get("per_class", {}))
    capped = list(labels.get("capped_classes", []))
    if capped:
        out["capped_classes"] = {c: per_class.get(c) for c in capped}
    if "shots" in labels:
        shots = int(labels["shots"])
        uneven = {c: n for c, n in per_class.items() if c not in capped and n != shots}
        if uneven:
            out["uneven_classes"] = uneven
    if str(selected_on).startswith("default"):
        out["fallback"] = str(selected_on)
    values = sorted(float(v) for v in grid) if grid is not None and len(grid) else []
    if values and _validated(selected_on):
        for name, sides in (_EXTENDABLE if tuned is None else tuned).items():
            v = hyperparameters.get(name)
            if v is None:
                continue
            side = next(
                (s for s, g in (("lower", values[0]), ("upper", values[-1]))
                 if abs(float(v) - g) <= 1e-9 * abs(g)),
                "",
            )  # fmt: skip
            if side in sides:
                out["grid_edge"] = {name: side, "grid": [values[0], values[-1]]}
    k = hyperparameters.get("k")
    if k is not None and k_asked is not None and int(k) < int(k_asked) and int(k) >= n_train:
        out["k_capped"] = {"asked": int(k_asked), "used": int(k), "n_labelled": int(n_train)}
    if 0 < n_test < SMALL_TEST:
        out["small_test"] = int(n_test)
    if len(absent):
        out["absent_classes"] = [str(c) for c in absent]
    return out


def absent_classes(y_test: Any, class_names: Sequence[str]) -> list[str]:
    """The classes of ``class_names`` without a test image (multilabel: without a positive).

    Args:
        y_test: (n,) class indices into ``class_names``, or (n, L) 0/1 indicators.
    """
    import numpy as np

    y = np.asarray(y_test)
    if y.ndim == 2:
        present = y.sum(axis=0) > 0
    else:
        present = np.bincount(y.astype(np.int64), minlength=len(class_names)) > 0
    return [str(c) for c, p in zip(class_names, present, strict=False) if not p]


def describe(name: str, detail: Any) -> str:
    """One caveat in words, e.g. 'C at the upper edge of its grid (1e-05 to 1e+06)'."""
    if name == "grid_edge":
        ((hyper, side),) = ((k, v) for k, v in detail.items() if k != "grid")
        lo, hi = detail["grid"]
        return (
            f"{hyper} at the {side} edge of its grid ({lo:g} to {hi:g}): the optimum may lie beyond"
        )
    if name == "k_capped":
        return f"k = {detail['used']}: all {detail['n_labelled']} labelled rows (asked for {detail['asked']})"
    if name in ("capped_classes", "uneven_classes"):
        drawn = ", ".join(f"{c} {n}" for c, n in detail.items())
        what = (
            "fewer in train than the shots asked"
            if name == "capped_classes"
            else "whole patient groups"
        )
        return f"drawn per class: {drawn} ({what})"
    if name == "fallback":
        return str(detail)
    if name == "absent_classes":
        return f"no test image of {', '.join(detail)}: no score here speaks for it"
    if name == "small_test":
        return f"only {detail} test rows: one row is {100 / detail:.1f} points"
    return f"{name}: {detail}"

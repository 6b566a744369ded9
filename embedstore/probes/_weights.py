"""Class weights, exactly as scikit-learn's ``class_weight`` (``sklearn.utils.compute_class_weight``).

``"balanced"`` gives class c the weight ``n_samples / (n_classes * n_c)``, so every class carries
the same total weight and the weights of all samples sum to ``n_samples``. A probe turns class
weights into per-sample weights of its loss (logistic regression, SVM: scikit-learn multiplies
``C`` per sample) or of its votes (kNN).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError

__all__ = [
    "CLASS_WEIGHTS",
    "check_class_weight",
    "class_weights",
    "sample_weights",
    "vote_weights",
]

CLASS_WEIGHTS = ("none", "balanced")  # the names the CLI accepts; a dict also works in Python


def check_class_weight(class_weight: Any) -> str | dict | None:
    """``None``/``"none"`` -> None; ``"balanced"``; or a {class: weight > 0} dict; else raise."""
    if class_weight is None or class_weight == "none":
        return None
    if class_weight == "balanced":
        return "balanced"
    if isinstance(class_weight, Mapping):
        bad = {k: v for k, v in class_weight.items() if not (np.isfinite(v) and v > 0)}
        if bad:
            raise InvalidDataError(
                f"class_weight values must be finite and > 0; received {bad}. "
                "Use 'balanced' for weights n / (n_classes * n_c)."
            )
        return dict(class_weight)
    raise InvalidDataError(
        f"class_weight must be None, 'balanced' or a dict {{class: weight}}; "
        f"received {class_weight!r}."
    )


def class_weights(class_weight: Any, classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights (n_classes,) in the order of ``classes`` (the sorted unique labels of ``y``).

    ``class_weight=None`` gives ones; ``"balanced"`` ``n / (n_classes * bincount)``; a dict gives
    its value for each class it names and 1 for the others, as scikit-learn.
    """
    cw = check_class_weight(class_weight)
    classes = np.asarray(classes)
    if cw is None:
        return np.ones(len(classes))
    if isinstance(cw, str):  # "balanced" (check_class_weight allows no other string)
        idx = np.searchsorted(classes, y)
        counts = np.bincount(idx, minlength=len(classes)).astype(np.float64)
        if (counts == 0).any():
            raise InvalidDataError("class_weight='balanced' needs every class present in y.")
        return len(y) / (len(classes) * counts)
    unknown = set(cw) - set(classes.tolist())
    if unknown:
        raise InvalidDataError(
            f"class_weight names classes {sorted(unknown)} that are not in y "
            f"(classes: {classes.tolist()})."
        )
    return np.array([float(cw.get(c, 1.0)) for c in classes.tolist()])


def sample_weights(
    class_weight: Any, classes: np.ndarray, y: Any, *, task: str = "multiclass"
) -> np.ndarray | None:
    """Per-sample weights (n,) of ``class_weight`` for labels ``y``; None when unweighted."""
    if check_class_weight(class_weight) is None:
        return None
    if task == "multilabel":
        raise InvalidDataError("class_weight applies to single-label tasks; received multilabel.")
    y = np.asarray(y)
    w = class_weights(class_weight, classes, y)
    return w[np.searchsorted(np.asarray(classes), y)]


def vote_weights(class_weight: Any, y_base: np.ndarray, n_classes: int) -> np.ndarray | None:
    """(n_classes,) kNN vote multipliers for base labels ``y_base`` (indices in [0, n_classes)).

    "balanced": ``n / (k * n_c)`` over the k classes present in the base (scikit-learn's
    ``compute_class_weight`` on ``y_base``); absent classes get 0 (they have no votes).
    """
    cw = check_class_weight(class_weight)
    if cw is None:
        return None
    if cw != "balanced":
        raise InvalidDataError("kNN votes take class_weight None or 'balanced'; got a dict")
    counts = np.bincount(np.asarray(y_base, dtype=np.int64), minlength=n_classes)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = len(y_base) / (present.sum() * counts[present])
    return w

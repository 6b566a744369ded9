"""Input checks every probe shares: features, labels, task kinds, fitted state, choices.

One error class per kind of mistake, the same in every estimator:

- :class:`~embedstore.errors.InvalidDataError`: an argument has the wrong shape, dtype or values
  (not 2-D, NaN/inf, lengths that disagree, a feature count other than the fitted one, an unknown
  task kind or option).
- :class:`~embedstore.errors.LabelsError`: labels a classifier cannot learn from (fewer than two
  classes, a binary task without exactly two); a ``ProtocolError``.
- :class:`~embedstore.errors.NotFittedError`: ``predict`` before ``fit``; an ``InvalidDataError``
  (and scikit-learn's ``NotFittedError``).

The task kinds are the store's (``embedstore.store.TASK_KINDS``), declared once there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError, LabelsError
from embedstore.store import TASK_KINDS

__all__ = [
    "TASK_KINDS",
    "check_choice",
    "check_classes",
    "check_features",
    "check_fitted",
    "check_labels",
    "check_targets",
    "check_task",
    "encode_with_classes",
]


class _ObjectTypeError(InvalidDataError, TypeError):
    """Features that are not numbers at all (a TypeError too, as numpy's and scikit-learn's)."""


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise InvalidDataError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InvalidDataError(
            f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}"
        )


def check_task(task: str, allowed: Sequence[str] = TASK_KINDS) -> str:
    """The task kind, checked against the store's kinds (or a method's subset of them)."""
    if task not in allowed:
        raise InvalidDataError(f"task must be one of {', '.join(allowed)}; got '{task}'")
    return task


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise NotFittedError unless ``estimator`` has the fitted ``attribute``."""
    if not hasattr(estimator, attribute):
        from embedstore.probes._sklearn import ProbeNotFittedError  # also scikit-learn's

        name = type(estimator).__name__
        raise ProbeNotFittedError(f"this {name} is not fitted yet; call fit(X, y) first")


def check_features(X: Any, *, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a finite float array of shape (n_samples, n_features), or raise.

    Accepts numpy arrays, torch tensors (moved to CPU) and nested lists. Never copies a float
    array; integer arrays become float32.
    """
    if hasattr(X, "detach"):  # torch tensor
        X = X.detach().cpu().numpy()
    if hasattr(X, "nnz") and hasattr(X, "toarray"):  # a scipy sparse matrix or array
        raise InvalidDataError(
            f"{name}: sparse input is not supported; pass a dense array ({name}.toarray())"
        )
    X = np.asarray(X)
    if X.ndim != 2:
        raise InvalidDataError(
            f"{name} must be 2-D (n_samples, n_features); received shape {X.shape}. "
            "Reshape your data: a single sample with X.reshape(1, -1)."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidDataError(
            f"{name} must have at least one row and one column; got {X.shape[0]} sample(s) and "
            f"{X.shape[1]} feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if np.iscomplexobj(X):
        raise InvalidDataError(f"Complex data not supported: {name} must be real numbers")
    if X.dtype == object:  # numbers held as Python objects (e.g. from pandas): convert
        try:
            X = X.astype(np.float64)
        except TypeError as e:  # e.g. a dict in a cell: numpy's message, as scikit-learn's
            raise _ObjectTypeError(f"{name} must be numeric; {e}") from None
        except ValueError:
            raise InvalidDataError(f"{name} must be numeric; received dtype object") from None
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise InvalidDataError(f"{name} must be numeric; received dtype {X.dtype}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float32)
    if n_features is not None and X.shape[1] != n_features:
        raise InvalidDataError(
            f"{name} has {X.shape[1]} features, but it is expecting {n_features} features as "
            f"input (fitted with {n_features}); pass features from the same backbone / fusion "
            "that was used in fit."
        )
    if not _finite(X):
        bad = int(sum((~np.isfinite(X[s : s + 4096])).any(axis=1).sum() for s in _starts(X)))
        raise InvalidDataError(
            f"{name} must be finite, but has NaN or Inf in {bad} row(s) ({bad} of {X.shape[0]} "
            "rows); drop, impute or re-extract those rows first."
        )
    return X


def _starts(X: np.ndarray) -> range:
    return range(0, X.shape[0], 4096)


def _finite(X: np.ndarray) -> bool:
    """All finite, in row blocks: no (n, D) boolean temporary for a large matrix."""
    if np.isfinite(X.sum(dtype=np.float64)):  # the cheap first test; overflow falls through
        return True
    return all(np.isfinite(X[s : s + 4096]).all() for s in _starts(X))


def check_labels(
    y: Any,
    *,
    n_samples: int | None = None,
    name: str = "y",
    allow_multilabel: bool = True,
    allow_names: bool = False,
) -> np.ndarray:
    """Return ``y`` as int64 (n,) class labels or (n, L) 0/1 multilabel indicators, or raise.

    ``allow_names``: 1-D labels of any other dtype (class names) pass as they are.
    """
    if y is None:
        raise InvalidDataError(
            f"this estimator requires y to be passed, but the target {name} is None"
        )
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim not in (1, 2) or (y.ndim == 2 and not allow_multilabel):
        expected = "(n_samples,) or (n_samples, n_labels)" if allow_multilabel else "(n_samples,)"
        raise InvalidDataError(f"{name} must have shape {expected}; received shape {y.shape}")
    if allow_names and y.ndim == 1 and y.dtype.kind not in "fiub":
        _check_length(y, n_samples, name)
        return y
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise InvalidDataError(
                f"{name} must hold integer class labels; received continuous (non-integer) "
                "values. Probes classify; encode classes as integers."
            )
    elif y.dtype.kind not in "iub":
        raise InvalidDataError(
            f"Unknown label type: {name} must hold integer labels; received dtype {y.dtype}. "
            "Encode class names as integers first (e.g. np.unique(..., return_inverse=True))."
        )
    y = y.astype(np.int64)
    _check_length(y, n_samples, name)
    if y.ndim == 2 and not np.isin(y, (0, 1)).all():
        raise InvalidDataError(f"multilabel {name} (2-D) must hold only 0 and 1")
    return y


def _check_length(y: np.ndarray, n_samples: int | None, name: str) -> None:
    if n_samples is not None and y.shape[0] != n_samples:
        ny = y.shape[0]
        raise InvalidDataError(
            f"{name} has {ny} entries but its X has {n_samples} rows; X and {name} must have the "
            f"same number of samples ({name}: {ny} rows but X has {n_samples})"
        )


def check_classes(y: np.ndarray, task: str, *, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Classes of single-label ``y`` (n,) and each row's class index, for a ``task`` to learn.

    Raises LabelsError for fewer than two classes, or a binary task without exactly two.
    """
    if y.ndim != 1:
        raise InvalidDataError(
            f"{task} {name} must be 1-D class labels; received shape {y.shape} "
            "(use task='multilabel' for (n, L) 0/1 indicators)"
        )
    classes, index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise LabelsError(
            f"{name} must contain at least 2 classes; received one class only: {classes.tolist()}. "
            "Label more samples, or draw a subset holding every class."
        )
    if task == "binary" and len(classes) != 2:
        raise LabelsError(
            f"task 'binary' needs exactly 2 classes, {name} has {len(classes)}; "
            "use task='multiclass'"
        )
    return classes, index


def check_targets(
    y: Any, task: str, *, n_samples: int, name: str = "y"
) -> tuple[np.ndarray, np.ndarray]:
    """Training labels for ``task``: ``(classes, targets)``.

    Single-label: the sorted classes (integers or names) and each row's class index (n,);
    multilabel: ``arange(L)`` and the (n, L) 0/1 matrix. Raises as :func:`check_labels` and
    :func:`check_classes`.
    """
    check_task(task)
    y = check_labels(y, n_samples=n_samples, name=name, allow_names=task != "multilabel")
    if task == "multilabel":
        if y.ndim != 2:
            raise InvalidDataError(
                f"multilabel {name} must be a (n_samples, n_labels) 0/1 array; received shape "
                f"{y.shape}"
            )
        return np.arange(y.shape[1]), y
    return check_classes(y, task, name=name)


def encode_with_classes(
    y: Any, classes: np.ndarray, multilabel: bool, *, n_samples: int, name: str = "y"
) -> np.ndarray:
    """Labels as the targets of a fitted model: indices into ``classes`` (n,), or (n, L) 0/1.

    Raises InvalidDataError for a label the model never saw, or a label count other than L.
    """
    y = check_labels(
        y, n_samples=n_samples, name=name, allow_multilabel=multilabel, allow_names=True
    )
    if multilabel:
        if y.ndim != 2 or y.shape[1] != len(classes):
            raise InvalidDataError(
                f"{name} must be 0/1 of shape (n, {len(classes)}), received {y.shape}"
            )
        return y
    idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    unknown = classes[idx] != y
    if unknown.any():
        raise InvalidDataError(
            f"{name} has labels not seen in y: {np.unique(y[unknown])[:5].tolist()}"
        )
    return idx.astype(np.int64)

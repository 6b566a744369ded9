"""From numpy arrays to the solver and back, for the logistic probe and its C sweep.

:mod:`~embedstore.probes.logistic` holds the estimator and the sweep protocol; this module holds
what both use underneath: label encoding (class indices for softmax, 0/1 columns for sigmoid),
the batched fit of many C values by :mod:`~embedstore.probes._solvers`, row checks, and logits and
probabilities computed a block of rows at a time so that a large feature matrix is never copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from embedstore.errors import InvalidDataError
from embedstore.probes import _solvers
from embedstore.probes.validation import check_targets

__all__ = ["DTYPES", "Fitted", "block_logits", "check_rows", "encode", "fit_many", "probabilities"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
_BLOCK_ROWS = 8192  # rows converted at a time for logits


def encode(y, task: str, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Labels -> (classes_, targets, link): class indices for softmax, (n, K) 0/1 for sigmoid."""
    classes, targets = check_targets(y, task, n_samples=n)
    if task == "multilabel":
        return classes, targets.astype(np.float64), "sigmoid"
    if len(classes) == 2:  # as scikit-learn: one logit for the second class
        return classes, targets[:, None].astype(np.float64), "sigmoid"
    return classes, targets, "softmax"


@dataclass
class Fitted:
    basis: _solvers.Basis
    theta: torch.Tensor  # (P, r+1, K)
    n_iter: np.ndarray
    coef: np.ndarray  # (P, K, D)
    intercept: np.ndarray  # (P, K)


def fit_many(
    X,
    Y,
    link,
    n_out,
    Cs,
    *,
    device,
    dtype,
    tol,
    max_iter,
    init=None,
    precondition=True,
    fit_intercept=True,
    rotation=None,
    rows=None,
    sample_weight=None,
) -> Fitted:
    dt = DTYPES[dtype]
    basis = _solvers.make_basis(  # reads X (all rows, or ``rows``) in blocks: no copy of X
        torch.as_tensor(X),
        rotate=precondition,
        intercept=fit_intercept,
        rotation=None if rotation is None else torch.as_tensor(rotation),
        rows=None if rows is None else torch.as_tensor(rows, dtype=torch.int64),
        dtype=dt,
        device=device,
    )
    Yt = torch.as_tensor(Y, device=device)
    theta0 = None
    if init is not None:
        coef0 = torch.as_tensor(
            np.broadcast_to(init[0], (len(Cs), *init[0].shape)).copy(), device=device
        ).to(dt)
        b0_np = np.asarray(init[1]) if fit_intercept else np.zeros(n_out)
        b0 = torch.as_tensor(np.broadcast_to(b0_np, (len(Cs), n_out)).copy(), device=device).to(dt)
        theta0 = _solvers.from_original(basis, coef0, b0)
    theta, n_iter, _ = _solvers.solve_logistic(
        basis,
        Yt,
        torch.as_tensor(np.asarray(Cs, dtype=np.float64)),
        link=link,
        n_out=n_out,
        init=theta0,
        tol=tol,
        max_iter=max_iter,
        sample_weight=None if sample_weight is None else torch.as_tensor(sample_weight),
    )
    W, b = _solvers.to_original(basis, theta)
    return Fitted(basis, theta, n_iter.cpu().numpy(), W.cpu().numpy(), b.cpu().numpy())


def check_rows(rows, n: int) -> int:
    rows = np.asarray(rows)
    if (
        rows.ndim != 1
        or rows.dtype.kind not in "iu"
        or (len(rows) and not 0 <= rows.min() <= rows.max() < n)
    ):
        raise InvalidDataError(
            f"rows must be 1-D integer positions in [0, {n}); received {rows!r:.80}"
        )
    return len(rows)


def _logits(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """X (n, D), coef (..., K, D), intercept (..., K) -> logits (..., n, K)."""
    return np.einsum("nd,...kd->...nk", X, coef, optimize=True) + intercept[..., None, :]


def block_logits(X, rows, coef: np.ndarray, intercept: np.ndarray, dtype) -> np.ndarray:
    """Logits (..., n, K) of ``X`` (or ``X[rows]``), converted to ``dtype`` a block at a time."""
    n = len(X) if rows is None else len(rows)
    parts = []
    for s in range(0, n, _BLOCK_ROWS):
        x = X[s : s + _BLOCK_ROWS] if rows is None else X[rows[s : s + _BLOCK_ROWS]]
        parts.append(_logits(np.asarray(x, dtype=dtype), coef, intercept))
    return np.concatenate(parts, axis=-2)


def probabilities(z: np.ndarray, link: str) -> np.ndarray:
    if link == "softmax":
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
    return np.exp(-np.logaddexp(0.0, -z))  # the sigmoid, without overflow for large |z|

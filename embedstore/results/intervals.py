"""The pieces every interval shares: resampling units, the cluster bootstrap, exact intervals.

A *unit* is what a bootstrap resamples: a test image, or a patient where the dataset records
patient groups (all images of a drawn patient come along: a cluster bootstrap). Without groups
the resampling is row for row what it always was, so intervals on ungrouped data do not move.

Where the bootstrap cannot be trusted (fewer than ``MIN_BOOTSTRAP_UNITS`` units, or the same
value in every resample, as 16 of 16 correct gives), a proportion gets an exact Clopper-Pearson
interval instead (:func:`clopper_pearson`) with an *effective* count of units:

- accuracy: n_eff = the number of units (images; patients where groups exist);
- balanced accuracy: n_eff = C x the harmonic mean of the per-class unit counts (its variance
  is that of a proportion over that many units when every class has the same recall; it equals
  the unit count when classes are balanced and shrinks as they become uneven);
- with patient groups a class's unit count is its number of patients. Counting a patient as one
  observation is the design effect 1 + (m - 1) ICC at ICC = 1, its upper bound: it is the only
  design effect defined where every image is right (or wrong), exactly where the exact interval
  is used, and it errs wide, never narrow. With one image per patient it is the image interval.

The estimate's successes are p_hat x n_eff (not always an integer; the beta quantiles of the
Clopper-Pearson interval take real arguments, and an integer count gives scipy's exact interval).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError

__all__ = [
    "MIN_BOOTSTRAP_UNITS",
    "Units",
    "clopper_pearson",
    "draw_units",
    "effective_n",
    "row_weights",
    "units",
]

MIN_BOOTSTRAP_UNITS = 30


class Units:
    """Test rows mapped to resampling units: ``codes`` (n,) unit index per row, ``n_units``."""

    def __init__(self, codes: np.ndarray, n_units: int, kind: str) -> None:
        self.codes = codes
        self.n_units = n_units
        self.kind = kind  # "image" | "patient"

    def count(self, mask: np.ndarray) -> int:
        """Distinct units among the rows where ``mask`` is true."""
        return int(np.unique(self.codes[mask]).size)


def units(groups: Any, n: int) -> Units:
    """Resampling units of ``n`` test rows: images, or patients from ``groups`` (n,) ids."""
    if groups is None:
        return Units(np.arange(n), n, "image")
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise InvalidDataError(
            f"groups must be one patient id per test row, shape ({n},); received shape {g.shape}"
        )
    _, codes = np.unique(g, return_inverse=True)
    codes = codes.ravel()
    return Units(codes, int(codes.max()) + 1 if n else 0, "patient")


def draw_units(rng: np.random.Generator, n_units: int, n_bootstrap: int) -> np.ndarray:
    """(B, n_units) unit indices drawn with replacement (the same call as a row bootstrap)."""
    return rng.integers(0, n_units, size=(n_bootstrap, n_units))


def row_weights(block: np.ndarray, u: Units) -> np.ndarray:
    """Row weights (b, n) of drawn units ``block`` (b, n_units): how often each row's unit came."""
    b, G = block.shape
    flat = (block + G * np.arange(b)[:, None]).ravel()
    counts = np.bincount(flat, minlength=b * G).reshape(b, G).astype(np.float64)  # (b, G)
    return counts if u.kind == "image" else counts[:, u.codes]


def clopper_pearson(successes: float, n: float, ci: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion; never zero-width for n >= 1.

    Args:
        successes: k in [0, n]; a real number is allowed (an effective count).
        n: trials (> 0).
    """
    from scipy.stats import beta

    if n <= 0:
        raise InvalidDataError(f"an exact interval needs n > 0 trials; got n={n}")
    k = min(max(float(successes), 0.0), float(n))
    alpha = 1.0 - ci
    low = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def effective_n(metric: str, y: np.ndarray, u: Units, task: str) -> float:
    """The effective unit count of the exact interval of ``metric`` (module docstring)."""
    if metric == "accuracy":
        return float(u.n_units)
    if task == "multilabel":  # the most uneven label decides
        return float(min(_balanced_n([y[:, j] == 0, y[:, j] == 1], u) for j in range(y.shape[1])))
    return _balanced_n([y == c for c in np.unique(y)], u)


def _balanced_n(masks: list[np.ndarray], u: Units) -> float:
    counts = np.array([u.count(m) for m in masks if m.any()], dtype=np.float64)
    if counts.size == 0:
        return 0.0
    return float(counts.size**2 / (1.0 / counts).sum())  # C x harmonic mean

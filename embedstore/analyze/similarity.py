"""Backbone similarity from the store alone: linear CKA and its debiased form between every pair
of backbones of a dataset, on one split, from stored embeddings (no images, no torch).

Definitions: linear CKA of Kornblith et al. 2019 ("Similarity of Neural Network Representations
Revisited", ICML; eq. for the linear kernel: ||YᵀX||_F² / (||XᵀX||_F ||YᵀY||_F) on column-centred
X, Y), and the debiased CKA of Nguyen, Raghu & Kornblith 2021 ("Do Wide and Deep Networks Learn
the Same Things?", ICLR), which replaces each HSIC by the unbiased estimator of Song et al. 2012.
Both are computed in feature space, as the authors' demo notebook does
(google-research/google-research, representation_similarity/Demo.ipynb,
``feature_space_linear_cka``): with the linear kernel every Gram-matrix term reduces to
XᵀY products and row norms, so no n×n matrix is formed when n > dim. The tests check both
against the Gram-matrix form written out in numpy.

CKA tells a researcher which backbones carry different information before fusing them
(Truong et al. 2021 found fusion helps because representations differ); it needs no labels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedstore.analyze.records import AnalysisResult, backbone_provenance
from embedstore.errors import InvalidDataError

__all__ = ["SimilarityMatrix", "backbone_similarity", "linear_cka"]

_MIN_ROWS = 4  # the unbiased HSIC divides by n - 3


@dataclass(frozen=True)
class _Centred:
    x: np.ndarray  # (n, d) float64, columns centred
    row_sq: np.ndarray  # (n,) squared row norms ||x_i||²
    self_cross: float  # ||XᵀX||_F²


def _centre(x: np.ndarray) -> _Centred:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    row_sq = np.einsum("ij,ij->i", x, x)
    return _Centred(x, row_sq, _cross(x, x))


def _cross(x: np.ndarray, y: np.ndarray) -> float:
    """||XᵀY||_F² = tr(K_x K_y), by the cheaper route: (d_x, d_y) product or (n, n) Grams."""
    n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    if n * n * (dx + dy) < n * dx * dy:
        return float(np.sum((x @ x.T) * (y @ y.T)))
    xty = x.T @ y  # (dx, dy)
    return float(np.sum(xty * xty))


def _hsic(a: _Centred, b: _Centred, cross: float, debiased: bool) -> float:
    """HSIC of two centred feature sets up to a factor that cancels in CKA.

    Biased: tr(K̃ L̃) with centred Grams = ||XᵀY||_F². Debiased (Song et al. 2012, on
    column-centred features, where 1ᵀK1 = 0 so K̃1 = -diag(K) and 1ᵀK̃1 = -Σ||x_i||² with K̃ the
    Gram with its diagonal zeroed): ||XᵀY||² - n/(n-2) Σ_i ||x_i||²||y_i||²
    + Σ||x_i||² Σ||y_i||² / ((n-1)(n-2)); the 1/(n(n-3)) factor cancels in the ratio.
    """
    if not debiased:
        return cross
    n = a.x.shape[0]
    sx, sy = float(a.row_sq.sum()), float(b.row_sq.sum())
    return cross - n / (n - 2) * float(a.row_sq @ b.row_sq) + sx * sy / ((n - 1) * (n - 2))


def _cka(a: _Centred, b: _Centred, debiased: bool) -> float:
    cross = a.self_cross if a is b else _cross(a.x, b.x)
    num = _hsic(a, b, cross, debiased)
    den2 = _hsic(a, a, a.self_cross, debiased) * _hsic(b, b, b.self_cross, debiased)
    if den2 <= 0:  # a constant feature set: no variance to align
        return float("nan")
    return float(num / np.sqrt(den2))


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2:
        raise InvalidDataError(
            f"CKA needs two 2-D arrays (n_samples, dim), got shapes {x.shape} and {y.shape}"
        )
    if x.shape[0] != y.shape[0]:
        raise InvalidDataError(
            f"CKA compares the same samples: got {x.shape[0]} rows and {y.shape[0]} rows"
        )
    if x.shape[0] < _MIN_ROWS:
        raise InvalidDataError(f"CKA needs at least {_MIN_ROWS} samples, got {x.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidDataError("CKA inputs contain NaN or Inf values")
    return x, y


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = False) -> float:
    """Linear CKA between two representations of the same samples.

    Args:
        x: array of shape (n_samples, dim_x).
        y: array of shape (n_samples, dim_y).
        debiased: use the unbiased HSIC estimator (Nguyen et al. 2021); it can be slightly
            negative for unrelated representations and is less inflated by dim > n_samples.

    Returns:
        A float, 1.0 for representations equal up to rotation and isotropic scaling.
    """
    x, y = _check_pair(x, y)
    return _cka(_centre(x), _centre(y), debiased)


@dataclass(frozen=True)
class SimilarityMatrix:
    """CKA between every pair of backbones of one dataset split.

    ``cka`` and ``cka_debiased`` are (k, k) symmetric arrays in the order of ``backbones``.
    """

    dataset: str
    split: str
    backbones: tuple[str, ...]
    cka: np.ndarray
    cka_debiased: np.ndarray
    n: int
    seconds: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_records(self) -> list[AnalysisResult]:
        """One record per unordered pair (i <= j), metrics cka and cka_debiased."""
        out = []
        settings = {"split": self.split, "kernel": "linear"}
        for i, a in enumerate(self.backbones):
            for j in range(i, len(self.backbones)):
                b = self.backbones[j]
                out.append(
                    AnalysisResult(
                        analysis="similarity",
                        dataset=self.dataset,
                        features=(a, b),
                        setting="",
                        metrics={
                            "cka": _value(self.cka[i, j]),
                            "cka_debiased": _value(self.cka_debiased[i, j]),
                        },
                        settings=settings,
                        n=self.n,
                        provenance={k: self.provenance.get(k, {}) for k in dict.fromkeys((a, b))},
                        extra={"seconds_all_pairs": round(self.seconds, 4)},
                    )
                )
        return out


def _value(v: float) -> dict[str, float | None]:
    return {"value": None if not np.isfinite(v) else float(v), "ci_low": None, "ci_high": None}


def backbone_similarity(
    store: Any,
    dataset: str,
    *,
    backbones: Sequence[str] | None = None,
    split: str = "test",
) -> SimilarityMatrix:
    """Linear and debiased CKA between every pair of a dataset's backbones, from the store.

    Uses the rows of ``split`` that are valid (image readable at extraction) for every backbone
    compared, so all pairs see the same samples.

    Args:
        store: an open :class:`~embedstore.store.Store`.
        backbones: which backbones (default: every complete one of the dataset), at least two.
        split: 'train', 'val', 'test' or 'all'.
    """
    t0 = time.perf_counter()
    if split not in ("train", "val", "test", "all"):
        raise InvalidDataError(f"split must be one of train, val, test, all; got '{split}'")
    if backbones:  # tags and the timm/ spelling resolve as for probe --backbone / --fuse
        from embedstore.names import resolve_backbone

        stored = store.backbones(dataset)
        names = [resolve_backbone(b, stored, dataset=dataset) for b in backbones]
    else:
        names = _complete_backbones(store, dataset)
    if len(set(names)) != len(names):
        raise InvalidDataError(f"backbones must not repeat, got {names}")
    if len(names) < 2:
        raise InvalidDataError(
            f"similarity compares backbones pairwise and needs at least two; dataset '{dataset}' "
            f"has {names or 'none'} complete. Extract another backbone, or pass two with -b"
        )
    if split == "all":
        rows = np.arange(store.dataset_info(dataset).n_samples)
    else:
        rows = store.split_rows(dataset, split)
    valid = np.ones(len(rows), dtype=bool)
    for name in names:
        valid &= store.valid_rows(dataset, name)[rows]
    rows = rows[valid]
    if len(rows) < _MIN_ROWS:
        raise InvalidDataError(
            f"split '{split}' of '{dataset}' has {len(rows)} usable rows; CKA needs at least "
            f"{_MIN_ROWS}. Pass another --split (train, val, test or all)"
        )
    centred, provenance = [], {}
    for name in names:
        info = store.array_info(dataset, name)
        provenance[name] = backbone_provenance(info.provenance)
        centred.append(_centre(store.embeddings(dataset, name, rows=rows)))
    k = len(names)
    lin, deb = np.eye(k), np.eye(k)
    for i in range(k):
        lin[i, i] = _cka(centred[i], centred[i], False)
        deb[i, i] = _cka(centred[i], centred[i], True)
        for j in range(i + 1, k):
            lin[i, j] = lin[j, i] = _cka(centred[i], centred[j], False)
            deb[i, j] = deb[j, i] = _cka(centred[i], centred[j], True)
    return SimilarityMatrix(
        dataset=dataset,
        split=split,
        backbones=tuple(names),
        cka=lin,
        cka_debiased=deb,
        n=len(rows),
        seconds=time.perf_counter() - t0,
        provenance=provenance,
    )


def _complete_backbones(store: Any, dataset: str) -> list[str]:
    return [b for b in store.backbones(dataset) if store.array_info(dataset, b).complete]

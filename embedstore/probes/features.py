"""Feature sets read from a store: one backbone, or a fusion of several aligned by sample.

A probe run reads each backbone's array once, in row blocks, straight into the float32 matrix of
every feature set that uses it (a fusion's columns side by side), then normalises each backbone's
columns in place, block by block. Memory is the feature matrices themselves plus one block: no
whole float16 read, float32 copy or normalised copy beside them. Rows that are missing (unreadable
image) in any backbone of the run are dropped from every feature set, so that all comparisons in
one run are paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.names import resolve_backbone
from embedstore.probes.options import NORMALIZATIONS
from embedstore.store import SPLIT_CODES, Store

__all__ = [
    "NORMALIZATIONS",
    "FeatureSet",
    "LabelledData",
    "load_feature_sets",
    "load_features",
    "load_labelled_data",
    "parse_fuse",
]


@dataclass(frozen=True)
class LabelledData:
    """The dataset side of a run: labels, splits and groups of the rows every feature set keeps.

    ``rows`` are indices into the dataset's full arrays; every other array is already restricted to
    them, so ``labels[i]`` belongs to ``FeatureSet.X[i]``.
    """

    dataset: str
    task: str
    class_names: tuple[str, ...]
    rows: np.ndarray  # (n,)
    ids: np.ndarray  # (n,)
    labels: np.ndarray  # (n,) int or (n, C) uint8
    split: np.ndarray  # (n,) uint8
    group: np.ndarray | None  # (n,)
    n_dropped: int = 0

    def indices(self, split: str) -> np.ndarray:
        """Positions (into X / labels) of one split."""
        return np.flatnonzero(self.split == SPLIT_CODES[split])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class FeatureSet:
    """Features of one backbone or one fusion, array X of shape (n, sum(widths)), float32."""

    backbones: tuple[str, ...]
    X: np.ndarray
    widths: tuple[int, ...]
    normalize: str
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "+".join(self.backbones)

    @property
    def is_fusion(self) -> bool:
        return len(self.backbones) > 1


def parse_fuse(spec: str) -> tuple[str, ...]:
    """'dino,swav' -> ('dino', 'swav'); refuses empty parts and repeats."""
    parts = tuple(p.strip() for p in spec.split(","))
    if len(parts) < 2 or any(not p for p in parts):
        raise InvalidDataError(
            f"--fuse expects two or more comma-separated backbones, e.g. 'a,b'; got '{spec}'"
        )
    if len(set(parts)) != len(parts):
        raise InvalidDataError(f"--fuse lists a backbone twice: '{spec}'")
    return parts


def load_feature_sets(
    store: Store,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    *,
    normalize: str = "l2",
) -> tuple[LabelledData, list[FeatureSet]]:
    """Load each backbone once and build every requested feature set on the common rows.

    Args:
        feature_sets: e.g. [["a"], ["b"], ["a", "b"]]: single backbones and fusions; each name is
            resolved with :func:`resolve_backbone` (``["dino", "swav"]`` is
            ``("resnet50.dino", "resnet50.swav")`` when those are the only such arrays).
        normalize: 'l2' (each backbone's rows to unit norm, then concatenate: the default),
            'standard' (each dimension to zero mean / unit variance using training-split
            statistics only), or 'none'.

    Returns:
        The labelled rows shared by all feature sets, and one FeatureSet per request, in order.
    """
    data, resolved = load_labelled_data(store, dataset, feature_sets, normalize=normalize)
    return data, load_features(store, data, resolved, normalize=normalize)


def check_normalize(normalize: str) -> str:
    if normalize not in NORMALIZATIONS:
        raise InvalidDataError(
            f"normalize must be one of {', '.join(NORMALIZATIONS)}, got '{normalize}'"
        )
    return normalize


def load_labelled_data(
    store: Store,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    *,
    normalize: str = "l2",
) -> tuple[LabelledData, list[tuple[str, ...]]]:
    """The dataset side of a run, without reading any embeddings: labels, splits and groups of the
    rows every backbone of ``feature_sets`` holds, and the feature sets with resolved names.

    Every name is resolved and every array checked (extracted, complete) here, so that a run can
    refuse a bad request before it reads a feature.
    """
    check_normalize(normalize)
    if not feature_sets:
        raise InvalidDataError("give at least one backbone (--backbone) or fusion (--fuse)")
    info = store.dataset_info(dataset)
    stored = store.backbones(dataset)
    resolved = [
        tuple(resolve_backbone(b, stored, dataset=dataset) for b in fs) for fs in feature_sets
    ]
    for fs in resolved:
        if len(set(fs)) != len(fs):
            raise InvalidDataError(f"a fusion names one backbone twice: {', '.join(fs)}")
    needed = list(dict.fromkeys(b for fs in resolved for b in fs))
    for b in needed:  # array_info raises a clear error for a backbone not extracted
        store.array_info(dataset, b)
    valid = np.ones(info.n_samples, dtype=bool)
    for b in needed:
        valid &= store.valid_rows(dataset, b)
    rows = np.flatnonzero(valid)
    split = store.split(dataset)[rows]
    group = store.group(dataset)
    data = LabelledData(
        dataset=dataset,
        task=info.task,
        class_names=info.class_names,
        rows=rows,
        ids=store.ids(dataset)[rows],
        labels=store.labels(dataset)[rows],
        split=split,
        group=None if group is None else group[rows],
        n_dropped=int(info.n_samples - len(rows)),
    )
    return data, resolved


def load_features(
    store: Store,
    data: LabelledData,
    feature_sets: Sequence[Sequence[str]],
    *,
    normalize: str = "l2",
) -> list[FeatureSet]:
    """The float32 matrices of ``feature_sets`` (resolved names) on ``data``'s rows.

    Each backbone is read once, in row blocks, into every matrix that uses it.
    """
    dataset = data.dataset
    needed = list(dict.fromkeys(b for fs in feature_sets for b in fs))
    provenance: dict[str, Any] = {b: store.array_info(dataset, b).provenance for b in needed}
    n_all = data.n_dropped + len(data.rows)
    valid = np.zeros(n_all, dtype=bool)
    valid[data.rows] = True
    train = data.split == SPLIT_CODES["train"]
    widths = {b: store.array_info(dataset, b).shape[1] for b in needed}
    outs: list[Any] = []
    where: dict[str, list[Any]] = {b: [] for b in needed}  # where[b]: (matrix, first column) pairs
    for fs in feature_sets:
        fs = tuple(fs)
        X = np.empty((len(data.rows), sum(widths[b] for b in fs)), dtype=np.float32)
        col = 0
        for b in fs:
            where[b].append((X, col))
            col += widths[b]
        outs.append((fs, X))
    for b in needed:
        _read_into(store, dataset, b, widths[b], valid, where[b])
        _normalize_in_place(where[b], widths[b], normalize, train)
    return [
        FeatureSet(
            backbones=fs,
            X=X,
            widths=tuple(widths[b] for b in fs),
            normalize=normalize,
            provenance={b: provenance[b] for b in fs},
        )
        for fs, X in outs
    ]


_BLOCK_BYTES = 64 * 2**20  # float32 rows read, converted and normalised at a time
_BLOCK_ROWS: int | None = None  # fixed rows per block instead (tests)


def _blocks(n: int, width: int):
    step = _BLOCK_ROWS or max(256, _BLOCK_BYTES // (4 * width))
    for s in range(0, n, step):
        yield slice(s, min(s + step, n))


def _read_into(store: Store, dataset: str, backbone: str, width: int, valid, targets) -> None:
    """Read one backbone in row blocks into its columns of every target matrix."""
    n_all = len(valid)
    kept = np.cumsum(valid) - valid  # position among kept rows of each dataset row
    for blk in _blocks(n_all, width):
        keep = valid[blk]
        if not keep.any():
            continue
        X = store.embeddings(dataset, backbone, rows=blk)[keep]  # (b, d) float32
        dst = slice(int(kept[blk.start]), int(kept[blk.start]) + len(X))
        for M, col in targets:
            M[dst, col : col + X.shape[1]] = X


def _normalize_in_place(targets, d: int, how: str, train: np.ndarray) -> None:
    """Normalise one backbone's (n, d) columns in every target; statistics from training rows."""
    if how == "none":
        return
    M0, c0 = targets[0]
    n = M0.shape[0]
    if how == "standard":
        ref = train if train.any() else np.ones(n, dtype=bool)
        total, sq, count = np.zeros(d), np.zeros(d), int(ref.sum())
        for blk in _blocks(n, d):
            x = M0[blk, c0 : c0 + d][ref[blk]].astype(np.float64)
            total += x.sum(axis=0)
            sq += (x * x).sum(axis=0)
        mean = total / count
        std = np.sqrt(np.maximum(sq / count - mean * mean, 0.0))
        mean32, scale32 = (
            mean.astype(np.float32),
            np.where(std > 1e-12, std, 1.0).astype(np.float32),
        )
    for M, col in targets:
        for blk in _blocks(n, d):
            x = M[blk, col : col + d]
            if how == "l2":
                x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            else:
                x -= mean32
                x /= scale32

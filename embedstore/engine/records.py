"""Cells to records: run a method on a cell and assemble its
:class:`~embedstore.results.records.ProbeResult` (metrics with intervals, the protocol, the labelled
subset, the caveats): the one place records are made, for `probe`, `sweep` and `study` alike."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import TYPE_CHECKING

import numpy as np

from embedstore.probes.method import Cell, Method, Outcome
from embedstore.results.caveats import absent_classes, find_caveats
from embedstore.results.records import ProbeResult

if TYPE_CHECKING:
    from embedstore.probes.features import LabelledData

__all__ = ["cell_cache_key", "run_cell", "test_proba"]


def _expand(proba: np.ndarray, classes: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Columns for the classes a model saw -> columns for all classes (absent ones get 0)."""
    if classes is None or proba.shape[1] == n_classes:
        return proba
    full = np.zeros((proba.shape[0], n_classes), dtype=proba.dtype)
    full[:, np.asarray(classes, dtype=np.int64)] = proba
    return full


def _digest(ids: np.ndarray) -> str:
    """A short fingerprint of the labelled sample ids: equal digests mean the same labels."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:16]


def test_proba(outcome: Outcome, data: LabelledData) -> np.ndarray:
    """An outcome's test scores with one column per class of the dataset (or per label)."""
    if outcome.proba is None:
        raise ValueError(f"outcome has metrics, not test probabilities: {outcome}")
    if data.labels.ndim == 1:
        return _expand(outcome.proba, outcome.classes, data.n_classes)
    return outcome.proba


def cell_cache_key(method: Method, cell: Cell) -> Hashable:
    """Cells with the same key give the same record body (identical subsets: computed once)."""
    key = (method.name, cell.labelled.tobytes())
    return key if method.reuse_across_seeds else (*key, cell.seed)


def run_cell(method: Method, cell: Cell, outcome: Outcome | None = None) -> ProbeResult:
    """Run ``method`` on ``cell`` (unless its ``outcome`` is given) and assemble the record."""
    from embedstore.probes.metrics import classification_metrics

    out = method.run(cell) if outcome is None else outcome
    data, fs, opts = cell.data, cell.features, cell.options
    if out.metrics is not None:
        metrics = out.metrics
    else:
        proba = test_proba(out, data)
        m = classification_metrics(
            data.labels[cell.test],
            proba,
            task=data.task,
            n_bootstrap=opts.n_bootstrap,
            seed=cell.seed,
            groups=None if data.group is None else data.group[cell.test],
        )
        metrics = {k: v.to_dict() for k, v in m.items()}
    protocol = {
        "name": method.title,
        **method.protocol(cell),
        "selection": cell.selection,
        "normalize": fs.normalize,
        "fit_on": cell.fit_on,
        "scored_on": "test",
        "class_weight": (opts.class_weight or "none") if method.class_weighted else "none",
        **out.protocol,
    }
    if opts.preset is not None:
        from embedstore.probes.presets import get_protocol

        protocol["preset"] = get_protocol(opts.preset).record()
    labels = {}
    if cell.subset is not None:
        labels = {**cell.subset.record(), "subset_digest": _digest(data.ids[cell.labelled])}
    caveats = find_caveats(
        labels=labels,
        selected_on=out.selected_on,
        hyperparameters=out.hyperparameters,
        n_train=out.n_train,
        n_test=len(cell.test),
        grid=method.grid(opts),
        k_asked=opts.k,
        absent=absent_classes(data.labels[cell.test], data.class_names),
        tuned=method.tuned,
    )
    return ProbeResult(
        dataset=data.dataset,
        features=fs.backbones,
        method=method.name,
        protocol=protocol,
        metrics=metrics,
        hyperparameters=out.hyperparameters,
        selected_on=out.selected_on,
        seed=cell.seed,
        n_train=int(out.n_train),
        n_test=int(len(cell.test)),
        provenance=fs.provenance,
        extra=out.extra,
        labels=labels,
        caveats=caveats,
    )

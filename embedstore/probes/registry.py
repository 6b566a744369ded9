"""The probe methods `probe` and `sweep` share: one object per method, and the records they make.

A **method** is a :class:`Method` object: its ``name`` (``--method``), its ``title`` (the protocol
name written in every record), its hyper-parameter ``grid``, whether it runs on multilabel tasks,
in sweeps, and how ``probe`` chooses its hyper-parameters on the full labels (``probe_selection``,
``refit_on_val``). It gets a :class:`Cell` - the rows it may learn from (``labelled``), the
validation and test rows, the selection rule, the seed, the options - and returns an
:class:`Outcome`: test probabilities, the hyper-parameters it used, what chose them, how many rows
the final model learned from. The orchestrators (``evaluate_probes``, ``run_sweep``) only iterate
over feature sets × label settings × seeds, build cells and call :func:`run_cell`, which turns an
outcome into a :class:`~embedstore.report.ProbeResult` - the one place records are assembled.

How to add a method (touches one module)::

    @register
    class MyMethod(Method):
        name = "mine"                       # --method mine
        title = "my protocol (Author 2024)" # protocol["name"] in records
        multilabel = False                  # refuse multilabel tasks with a clear error

        def grid(self, options):            # the values selection chooses from ((): none)
            return (0.1, 1.0, 10.0)

        def run(self, cell):
            X, y, S = cell.features.X, cell.data.labels, cell.labelled
            choice = choose(cell, lambda n: self.grid(cell.options), evaluate, name="C",
                            default=1.0)      # selection.choose applies the cell's rule
            model = MyEstimator(C=choice.value).fit(X[S], y[S])
            return Outcome(proba=predict_rows(model, X, cell.test),
                           hyperparameters={"C": choice.value},
                           selected_on=choice.selected_on, n_train=len(S),
                           classes=model.classes_)

in a new module of :mod:`embedstore.probes.methods` (every module there is imported when methods
are first listed; nothing else changes). A preset
with fixed hyper-parameters returns them without calling ``choose`` and says so in
``selected_on``. New options go in :class:`ProbeOptions`; a field every record should carry goes
in :func:`run_cell`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embedstore.caveats import absent_classes, find_caveats
from embedstore.data.subsets import LabelSubset
from embedstore.devices import resolve_device
from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.options import ProbeOptions
from embedstore.report import ProbeResult

if TYPE_CHECKING:  # the store (zarr) is not imported to list methods (the CLI's help does)
    from embedstore.probes.features import FeatureSet, LabelledData

__all__ = [
    "Cell",
    "Method",
    "Outcome",
    "ProbeOptions",
    "get_method",
    "method_names",
    "parse_methods",
    "predict_rows",
    "register",
    "resolve_device",
    "run_cell",
]

_PREDICT_ROWS = 16384  # test rows per predict_proba call (bounded gathers)


@dataclass(frozen=True, eq=False)
class Cell:
    """One unit of work for a method: what it may learn from, how it chooses, where it scores.

    Positions index ``features.X`` and ``data.labels``. ``selection`` is "val", "train-cv" or
    "none" (:mod:`embedstore.probes.selection`); with ``refit`` the final model of a "val"
    choice learns from ``labelled`` + ``val`` (the published many-shot protocol). ``pool`` is
    where labelled subsets are drawn from (a sweep's; ``labelled`` itself in a probe).
    ``shared`` lives as long as the feature set (caches), ``memo`` as long as the run (e.g.
    few-shot episodes, the same for every feature set).
    """

    data: LabelledData
    features: FeatureSet
    labelled: np.ndarray
    val: np.ndarray
    val_desc: str
    test: np.ndarray
    pool: np.ndarray
    selection: str
    refit: bool
    seed: int
    options: ProbeOptions
    fit_on: str
    subset: LabelSubset | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int | None:
        """Classes (single-label), or None for multilabel tasks."""
        return None if self.data.labels.ndim == 2 else self.data.n_classes


@dataclass(frozen=True)
class Outcome:
    """What a method returns for one cell.

    ``proba``: (n_test, C) probabilities (columns = ``classes`` when the model saw fewer than
    C classes) or (n_test, L) per label; ``metrics``: instead of ``proba``, for methods that score
    themselves (few-shot episodes); ``protocol``: method fields for the record's ``protocol``.
    """

    hyperparameters: dict[str, Any]
    selected_on: str
    n_train: int
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None
    metrics: dict[str, dict[str, float | None]] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Method:
    """A probe method; subclass, set the class attributes, implement :meth:`run`, ``@register``."""

    name: ClassVar[str]
    title: ClassVar[str]
    multilabel: ClassVar[bool] = True  # runs on multilabel tasks
    in_sweep: ClassVar[bool] = True  # trains on a labelled subset (few-shot episodes do not)
    fusion_only_in_all: ClassVar[bool] = False  # `--method all` runs it on fusions only
    reuse_across_seeds: ClassVar[bool] = True  # same labelled rows -> same result, whatever seed
    probe_selection: ClassVar[str] = "none"  # how `probe` chooses on the full labels: none | val
    refit_on_val: ClassVar[bool] = False  # `probe`: refit on train+val after choosing on val
    class_weighted: ClassVar[bool] = False  # honours ``ProbeOptions.class_weight``
    in_all: ClassVar[bool] = True  # part of `--method all` (presets' methods run when named)
    # the hyper-parameter ``grid`` is searched for, and the ends of the grid its optimum may lie
    # beyond (the grid-edge caveat): e.g. {"C": ("lower", "upper")}; {} when nothing is tuned
    tuned: ClassVar[dict[str, tuple[str, ...]]] = {}

    def grid(self, options: ProbeOptions) -> Sequence[Any]:
        """The hyper-parameter values selection chooses from; () when there is nothing to choose."""
        return ()

    def protocol(self, cell: Cell) -> dict[str, Any]:
        """Method fields of the record's ``protocol`` (beside name, selection, fit_on, ...)."""
        return {}

    def check(self, data: LabelledData, options: ProbeOptions, memo: dict[str, Any]) -> None:
        """Raise ProtocolError when the method cannot run on this data (before any work)."""

    def run(self, cell: Cell) -> Outcome:
        raise NotImplementedError


_REGISTRY: dict[str, Method] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add one instance of ``cls`` to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise InvalidDataError(f"method '{cls.name}' is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _registry() -> dict[str, Method]:
    from embedstore.probes.methods import load_all

    load_all()  # each module registers its own methods
    return _REGISTRY


def method_names(*, sweep: bool = False) -> tuple[str, ...]:
    """Registered method names, in registration order (only those that run in sweeps)."""
    return tuple(n for n, m in _registry().items() if m.in_sweep or not sweep)


def get_method(name: str, *, sweep: bool = False) -> Method:
    """The method called ``name``; an unknown name lists the valid ones."""
    names = method_names(sweep=sweep)
    if name not in names:
        if sweep and name in _registry():
            raise InvalidDataError(
                f"sweep method '{name}' is not one of {', '.join(names)} (few-shot episodes have "
                f"their own protocol: `embedstore probe --method {name}`)"
            )
        extra = "" if sweep else " (or 'all')"
        raise InvalidDataError(f"method '{name}' is not one of {', '.join(names)}{extra}")
    return _REGISTRY[name]


def parse_methods(
    methods: str | Sequence[str], task: str, *, sweep: bool = False
) -> tuple[list[Method], bool]:
    """'all', a comma list or a list of names -> (methods, whether 'all' was asked for).

    'all' is every method that applies to the task; a named method that cannot run on a
    multilabel task is refused with a ProtocolError.
    """
    if isinstance(methods, str):
        if methods.strip() == "all":
            chosen = [m for m in _registry().values() if (m.in_sweep or not sweep) and m.in_all]
            return [m for m in chosen if task != "multilabel" or m.multilabel], True
        methods = methods.split(",")
    names = list(dict.fromkeys(n.strip() for n in methods if n.strip()))
    if not names:
        raise InvalidDataError(f"give at least one method: {', '.join(method_names(sweep=sweep))}")
    chosen = [get_method(n, sweep=sweep) for n in names]
    for m in chosen:
        if task == "multilabel" and not m.multilabel:
            ok = ", ".join(n for n, x in _registry().items() if x.multilabel)
            raise ProtocolError(
                f"method '{m.name}' needs single-label classes but this dataset is multilabel; "
                f"use one of {ok}"
            )
    return chosen, False


def predict_rows(model: Any, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``model.predict_proba(X[rows])`` in blocks of rows (no whole gathered copy)."""
    starts = range(0, len(rows), _PREDICT_ROWS)
    return np.concatenate([model.predict_proba(X[rows[s : s + _PREDICT_ROWS]]) for s in starts])


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
        from embedstore.protocols import get_protocol

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

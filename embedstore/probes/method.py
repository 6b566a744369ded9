"""The probe-method contract: a :class:`Method` gets a :class:`Cell` and returns an :class:`Outcome`;
``@register`` adds it to the methods `probe`, `sweep` and `study` list.

A **method** is a :class:`Method` object: its ``name`` (``--method``), its ``title`` (the protocol
name written in every record), its hyper-parameter ``grid``, whether it runs on multilabel tasks,
in sweeps, and how ``probe`` chooses its hyper-parameters on the full labels (``probe_selection``,
``refit_on_val``). It gets a :class:`Cell` - the rows it may learn from (``labelled``), the
validation and test rows, the selection rule, the seed, the options - and returns an
:class:`Outcome`: test probabilities, the hyper-parameters it used, what chose them, how many rows
the final model learned from. The engine (:mod:`embedstore.engine`) builds the cells and turns each
outcome into a record (:func:`embedstore.engine.records.run_cell`, the one place records are
assembled).

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
``selected_on``. New options go in :class:`~embedstore.probes.options.ProbeOptions`; a field every
record should carry goes in :func:`embedstore.engine.records.run_cell`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embedstore.data.subsets import LabelSubset
from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.options import ProbeOptions

if TYPE_CHECKING:  # the store (zarr) is not imported to list methods (the CLI's help does)
    from embedstore.probes.features import FeatureSet, LabelledData

__all__ = [
    "Cell",
    "Method",
    "Outcome",
    "get_method",
    "method_names",
    "parse_methods",
    "predict_rows",
    "register",
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

    def grid(self, options: ProbeOptions) -> Sequence[Any] | np.ndarray:
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

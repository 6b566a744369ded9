"""Labelled subsets of a training split for label-efficiency sweeps: by fraction or by shots.

The scheme (Truong et al. 2021; Nielsen et al. 2023: stratified, several seeds), made nested and
group-aware:

1. The sampling unit is the patient (``group``) when the dataset has groups, else the row.
   For each seed, the units get ONE random order (``numpy.random.default_rng(seed)``) that depends
   only on the unit ids, never on features.
2. Each stratum (a class; for multilabel data, see below) asks for a target number of rows
   ``t``: ``max(1, round(fraction * n_class))`` for a fraction, ``shots`` for shots. The stratum
   takes units in the seed's order until it holds ``t`` of its rows (all of them when it has fewer:
   the class is then *capped*, and the subset records it).
3. The subset is every training row of every unit taken by any stratum. Whole patients are taken,
   so with groups a class may get a few more rows than asked for (the record has the real counts).

Because each stratum takes a prefix of one fixed order and the prefix only grows with the target,
for a given seed the 1% subset lies inside the 10% one and the 5-shot inside the 10-shot. The
subset depends on labels, groups and seed only, so it is identical for every backbone and fusion.

Multilabel (labels of shape (n, C)): shots ask for ``shots`` positive rows of every label, plus
``shots`` rows with no positive label when there are any (the "no finding" stratum). Fractions
take the prefix of the order holding ``round(fraction * n)`` rows, extended so that every label
with a positive in train has at least one; so each label gets about its fraction of positives
(rare labels a little more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from embedstore.errors import InvalidDataError, ProtocolError

__all__ = [
    "LabelSetting",
    "LabelSubset",
    "labelled_subsets",
    "check_fractions",
    "check_shots",
    "parse_settings",
    "setting_key",
]


class LabelSetting(NamedTuple):
    """A label setting, ``("fraction", 0.01)`` or ``("shots", 5)``: one value from the CLI to the plot.

    A tuple, so it is a cell key and compares equal to ``("shots", 5)``; :meth:`record` is its
    form in a result record's ``labels``, :meth:`from_record` reads it back, :meth:`display` is
    how tables and plots show it ("1%", "5-shot"), :func:`parse_settings` reads the CLI's text.
    """

    kind: str  # "fraction" | "shots"
    value: float | int

    def record(self) -> dict[str, float | int]:
        return {self.kind: self.value}

    @classmethod
    def from_record(cls, labels_record: dict[str, Any]) -> LabelSetting | None:
        """The setting of a record's ``labels`` dict, or None (a probe record has none)."""
        if "fraction" in labels_record:
            return cls("fraction", float(labels_record["fraction"]))
        if "shots" in labels_record:
            return cls("shots", int(labels_record["shots"]))
        return None

    def display(self, share: float | None = None) -> str:
        """('fraction', 0.01) -> '1%'; ('shots', 5) -> '5-shot'.

        ``share``: the fraction of train actually drawn (``LabelSubset.share``; mean over seeds).
        On small data it can be far from the one asked (every class gets at least one row:
        ``--fractions 0.1`` of 8 training rows in 2 classes draws 2, 25%); where it differs from
        the asked fraction by more than a tenth of it, the label leads with the real share:
        '25% (10% asked)'.
        """
        if self.kind == "fraction":
            asked = f"{float(self.value) * 100:.3g}%"
            if share is None or abs(share - float(self.value)) <= 0.1 * float(self.value):
                return asked
            return f"{share * 100:.3g}% ({asked} asked)"
        return f"{int(self.value)}-shot"


def parse_settings(fractions: str | None, shots: str | None) -> list[LabelSetting]:
    """'0.01,0.1' and '1,5' (the CLI's text; either may be None) -> checked, sorted settings."""
    out: list[LabelSetting] = []
    for kind, text, check, example in (
        ("fraction", fractions, check_fractions, "0.01,0.1,1.0"),
        ("shots", shots, check_shots, "1,5,10"),
    ):
        if text is None:
            continue
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            option = "--fractions" if kind == "fraction" else "--shots"
            raise InvalidDataError(
                f"{option} expects comma-separated numbers, e.g. {example}; got '{text}'"
            ) from None
        out += [LabelSetting(kind, v) for v in check(numbers)]
    if not out:
        raise InvalidDataError("give --fractions (e.g. 0.01,0.1,1.0) or --shots (e.g. 1,5,10)")
    return out


@dataclass(frozen=True)
class LabelSubset:
    """One labelled subset: which positions of the pool were drawn, and what was asked for.

    ``positions`` index the same arrays as the ``labels`` given to :func:`labelled_subsets`
    (for a sweep: positions into ``LabelledData``), sorted ascending.
    """

    kind: str  # "fraction" | "shots"
    value: float | int
    seed: int
    positions: np.ndarray  # (n_labelled,) int64
    per_class: dict[str, int]
    capped_classes: tuple[str, ...]
    n_groups: int | None = None
    n_pool: int | None = None  # rows it was drawn from (the training split)

    @property
    def n_labelled(self) -> int:
        return int(len(self.positions))

    @property
    def share(self) -> float | None:
        """The fraction of the pool actually drawn (a fraction setting may round far from it)."""
        return self.n_labelled / self.n_pool if self.n_pool else None

    @property
    def setting(self) -> LabelSetting:
        """('fraction', 0.01) or ('shots', 5): the label setting, without the seed."""
        return LabelSetting(self.kind, self.value)

    def record(self) -> dict[str, Any]:
        """The ``labels`` field of a result record."""
        out: dict[str, Any] = {
            **self.setting.record(),
            "n_labelled": self.n_labelled,
            "per_class": dict(self.per_class),
            "capped_classes": list(self.capped_classes),
            "drawn_from": "train",
        }
        if self.n_groups is not None:
            out["n_groups"] = self.n_groups
        if self.n_pool is not None:
            out["n_pool"] = self.n_pool
            out["share"] = round(self.n_labelled / self.n_pool, 6)
        return out


def setting_key(labels_record: dict[str, Any]) -> LabelSetting | None:
    """The label setting of a record's ``labels`` dict: ('fraction', f), ('shots', k) or None."""
    return LabelSetting.from_record(labels_record)


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """Validate label fractions: each in (0, 1], no repeats; returned sorted."""
    out = []
    for f in fractions:
        try:
            v = float(f)
        except (TypeError, ValueError):
            raise InvalidDataError(
                f"label fractions must be numbers in (0, 1], e.g. 0.01,0.1,1.0; got '{f}'"
            ) from None
        if not 0.0 < v <= 1.0 or not np.isfinite(v):
            raise InvalidDataError(f"label fractions must be in (0, 1], e.g. 0.01,0.1,1.0; got {f}")
        out.append(v)
    if not out:
        raise InvalidDataError("give at least one label fraction, e.g. 0.01,0.1,1.0")
    if len(set(out)) != len(out):
        raise InvalidDataError(f"a label fraction is repeated in {list(fractions)}")
    return sorted(out)


def check_shots(shots: Sequence[float]) -> list[int]:
    """Validate shots (labelled samples per class): positive integers, no repeats; sorted."""
    out = []
    for k in shots:
        try:
            v = int(k)
            ok = v == float(k) and v >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidDataError(
                f"shots must be positive whole numbers of samples per class, e.g. 1,5,10; got '{k}'"
            )
        out.append(v)
    if not out:
        raise InvalidDataError("give at least one shot count, e.g. 1,5,10")
    if len(set(out)) != len(out):
        raise InvalidDataError(f"a shot count is repeated in {list(shots)}")
    return sorted(out)


def labelled_subsets(
    labels: np.ndarray,
    pool: np.ndarray,
    *,
    seed: int,
    fractions: Sequence[float] | None = None,
    shots: Sequence[int] | None = None,
    group: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> list[LabelSubset]:
    """Nested, stratified, group-aware labelled subsets of ``pool`` for one seed.

    Args:
        labels: (n,) class indices, or (n, C) 0/1 for multilabel; for all rows (not just pool).
        pool: (m,) positions of the rows that may be labelled (the training split).
        seed: the subset seed; the same seed gives the same subsets for any features.
        fractions: label fractions in (0, 1].
        shots: labelled rows per class.
        group: (n,) patient ids, or None; with groups whole patients are taken.
        class_names: names for the records (default: the class indices as strings).

    Returns:
        One subset per fraction (ascending), then one per shot count (ascending); nested within
        each kind.
    """
    labels = np.asarray(labels)
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) == 0:
        raise ProtocolError("the training split is empty; label subsets are drawn from train")
    fracs = check_fractions(fractions) if fractions else []
    shot_list = check_shots(shots) if shots else []
    if not fracs and not shot_list:
        raise InvalidDataError("give label fractions or shots (samples per class), or both")
    multilabel = labels.ndim == 2
    y = labels[pool]
    n_classes = y.shape[1] if multilabel else int(labels.max()) + 1
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]
    if len(names) < n_classes:
        raise InvalidDataError(
            f"class_names has {len(names)} names but labels go up to class {n_classes - 1}"
        )

    # One random order of the sampling units (patients, else rows) per seed.
    if group is not None:
        unit_ids, unit_of = np.unique(np.asarray(group)[pool], return_inverse=True)
        n_units = len(unit_ids)
    else:
        unit_of = np.arange(len(pool))
        n_units = len(pool)
    rank_of_unit = np.empty(n_units, dtype=np.int64)
    rank_of_unit[np.random.default_rng(seed).permutation(n_units)] = np.arange(n_units)
    rank = rank_of_unit[unit_of]  # (m,) position of each row's unit in the seed's order

    members = _strata(y, multilabel, n_classes)  # list of (m,) bool masks
    out = []
    for f in fracs:
        if multilabel:
            targets = [(np.ones(len(pool), bool), int(np.floor(f * len(pool) + 0.5)))]
            targets += [(m, 1) for m in members[:n_classes]]
        else:
            targets = [(m, max(1, int(np.floor(f * m.sum() + 0.5)))) for m in members]
        out.append(_draw("fraction", f, targets, rank, unit_of, pool, y, seed, names, group))
    for k in shot_list:
        targets = [(m, k) for m in members]
        out.append(_draw("shots", k, targets, rank, unit_of, pool, y, seed, names, group))
    return [replace(sub, n_pool=len(pool)) for sub in out]


def _strata(y: np.ndarray, multilabel: bool, n_classes: int) -> list[np.ndarray]:
    """Row masks of each stratum: one per class; multilabel adds the 'no positive label' rows."""
    if not multilabel:
        return [y == c for c in range(n_classes)]
    masks = [y[:, c] > 0 for c in range(n_classes)]
    none = ~np.asarray(y.any(axis=1))
    return masks + ([none] if none.any() else [])


def _draw(kind, value, targets, rank, unit_of, pool, y, seed, names, group) -> LabelSubset:
    """Take, per stratum, the shortest prefix of the unit order holding its target rows."""
    take_unit = np.zeros(int(unit_of.max()) + 1, dtype=bool)
    for mask, t in targets:
        r = np.sort(rank[mask])  # ranks of the stratum's rows, in the seed's order
        if len(r) == 0 or t <= 0:
            continue
        threshold = r[min(t, len(r)) - 1]  # the last unit this stratum needs
        take_unit[np.unique(unit_of[mask & (rank <= threshold)])] = True
    chosen = take_unit[unit_of]
    positions = np.sort(pool[chosen])
    yc = y[chosen]
    if y.ndim == 2:
        counts = yc.sum(axis=0).astype(int)
        available = y.sum(axis=0).astype(int)
    else:
        counts = np.bincount(yc, minlength=len(names)).astype(int)
        available = np.bincount(y, minlength=len(names)).astype(int)
    per_class = {names[c]: int(counts[c]) for c in range(len(names))}
    capped: list[str] = []
    if kind == "shots":
        capped = [names[c] for c in range(len(names)) if available[c] < value]
    else:
        capped = [names[c] for c in range(len(names)) if available[c] == 0]
    return LabelSubset(
        kind=kind,
        value=value,
        seed=seed,
        positions=positions.astype(np.int64),
        per_class=per_class,
        capped_classes=tuple(capped),
        n_groups=None if group is None else int(len(np.unique(unit_of[chosen]))),
    )

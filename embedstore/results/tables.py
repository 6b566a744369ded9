"""Tables for a paper from result records (rendered as CSV, Markdown, LaTeX by table_formats).

One table per dataset and method: rows are feature sets, columns are label settings (1%, 10%,
100%; 1-shot, 5-shot, ...; or "all labels" for `embedstore probe` records). A cell is the mean
over seeds ± the sample standard deviation over seeds (or, for a single record, ± the half-width of
its own 95% CI). Every table says how many rows a score stands on (test n per row, labelled n per
column) and marks, with a footnote, what a reader must know to trust a cell:

- the best mean per column (bold; ties at the printed precision are all bold);
- a cell measured on one labelled subset (every seed drew the same rows: no spread);
- labelled sets that differ from the setting (classes capped at what train holds, whole patient
  groups over- or undershooting), with what was drawn per class;
- hyperparameters not chosen by validation (too few labels for CV: the fallback value was used);
- a test split too small for the interval to mean much;
- a class absent from the test split; a metric that is not estimable (e.g. AUC on fewer than 2
  positives), with the reason, where the cell would otherwise be an empty dash.

A single record's interval says what it resampled (images or patients) and how (percentile
bootstrap, or the exact Clopper-Pearson interval at small n); the caption carries it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from embedstore.data.subsets import setting_key
from embedstore.errors import InvalidDataError
from embedstore.results.caveats import SMALL_TEST, find_caveats
from embedstore.results.records import METRICS, ProbeResult

__all__ = [
    "FLAGS",
    "SMALL_TEST",
    "TableCell",
    "ResultTable",
    "build_tables",
    "setting_label",
    "span_text",
]

# flag -> (marker, footnote), in the order footnotes are printed. Besides "one_subset" (a property
# of a cell's seeds), the flags are the record caveats of embedstore.results.caveats.
FLAGS: dict[str, tuple[str, str]] = {
    "one_subset": (
        "†",
        "one subset: every seed drew the same labelled rows, so the seeds are not replicates "
        "(no spread; left out of paired tests)",
    ),
    "capped_classes": (
        "‡",
        "fewer labelled samples than asked in some class (train holds fewer); drawn per class "
        "below",
    ),
    "uneven_classes": (
        "§",
        "whole patient groups: the labelled count per class differs from the setting; drawn "
        "per class below",
    ),
    "fallback": (
        "¶",
        "hyperparameter not validated (a class has 1 labelled sample: no CV possible): the "
        "method's default was used",
    ),
    "grid_edge": (
        "‖",
        "the chosen hyperparameter is at the edge of its grid: the optimum may lie beyond it",
    ),
    "k_capped": ("#", "kNN asked for more neighbours than there are labelled samples: k = all"),
    "absent_classes": (
        "∅",
        "a class has no image in the test split: no score speaks for it, and its AUC is not "
        "estimable",
    ),
}

Setting = tuple[str, float | int] | None
_DIGITS = {100.0: 1, 1.0: 3}  # decimals printed for percent / for kappa


@dataclass(frozen=True)
class TableCell:
    """One (feature set, method, setting): the metric over the seeds run."""

    features: str
    method: str
    setting: Setting
    mean: float
    spread: float | None  # s.d. over seeds, or the half-width of a single record's 95% CI
    spread_kind: str  # "sd" | "ci95" | "one subset" | "none"
    n_seeds: int
    n_labelled: tuple[int, int]  # (min, max) over seeds
    n_test: tuple[int, int]
    per_class: dict[str, tuple[int, int]]  # class -> (min, max) drawn over seeds
    flags: tuple[str, ...]
    best: bool = False
    ci_unit: str = ""  # a single record's interval: "image" | "patient" ("" unknown / none)
    ci_method: str = ""  # and how it was made ("percentile bootstrap", "Clopper-Pearson ...")
    share: float | None = None  # mean share of train drawn (fraction settings)


@dataclass(frozen=True)
class ResultTable:
    """The cells of one dataset × method × metric, and the notes printed under the table."""

    dataset: str
    method: str
    metric: str
    features: list[str]
    settings: list[Setting]
    cells: dict[tuple[str, Setting], TableCell]
    notes: list[str] = field(default_factory=list)
    scale: float = 100.0  # printed value = value * scale (percent; kappa as it is)

    @property
    def digits(self) -> int:
        return _DIGITS[self.scale]

    def flags(self) -> list[str]:
        """The flags used by any cell, in ``FLAGS`` order."""
        used = {f for c in self.cells.values() for f in c.flags}
        return [f for f in FLAGS if f in used]


def _value(r: ProbeResult, metric: str) -> tuple[float, float | None] | None:
    m = r.metrics.get(metric)
    value = m.get("value") if m else None
    if m is None or value is None or not math.isfinite(value):
        return None
    lo, hi = m.get("ci_low"), m.get("ci_high")
    half = None if lo is None or hi is None else (hi - lo) / 2
    return float(value), half


def _caveats(r: ProbeResult) -> dict:
    """A record's caveats; records written before they existed get those their fields show."""
    if r.caveats:
        return r.caveats
    return find_caveats(
        labels=r.labels,
        selected_on=r.selected_on,
        hyperparameters=r.hyperparameters,
        n_train=r.n_train,
        n_test=r.n_test,
    )


def _flags(records: Sequence[ProbeResult]) -> tuple[str, ...]:
    digests = {r.labels.get("subset_digest") for r in records}
    one = len(records) > 1 and len(digests) == 1 and None not in digests
    found = {k for r in records for k in _caveats(r)}
    return tuple(f for f in FLAGS if f in found or (f == "one_subset" and one))


def _cell(features: str, method: str, setting: Setting, records, metric: str) -> TableCell | None:
    values = [(r, v) for r in records if (v := _value(r, metric)) is not None]
    if not values:
        return None
    records = [r for r, _ in values]
    xs = [v for _, (v, _) in values]
    mean = sum(xs) / len(xs)
    flags = _flags(records)
    ci_info: dict[str, Any] = {}
    if "one_subset" in flags:
        spread, kind = None, "one subset"
    elif len(xs) > 1:
        spread = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        kind = "sd"
    elif values[0][1][1] is not None:
        spread, kind = values[0][1][1], "ci95"
        m = records[0].metrics[metric]
        ci_info = {"ci_unit": m.get("ci_unit") or "", "ci_method": m.get("ci_method") or ""}
    else:
        spread, kind = None, "none"
    per_class: dict[str, list[int]] = {}
    for r in records:
        for c, n in r.labels.get("per_class", {}).items():
            per_class.setdefault(c, []).append(int(n))
    n_lab = [int(r.labels.get("n_labelled", r.n_train)) for r in records]
    n_test = [int(r.n_test) for r in records]
    shares = [float(r.labels["share"]) for r in records if "share" in r.labels]
    return TableCell(
        features=features,
        method=method,
        setting=setting,
        mean=mean,
        spread=spread,
        spread_kind=kind,
        n_seeds=len(records),
        n_labelled=(min(n_lab), max(n_lab)),
        n_test=(min(n_test), max(n_test)),
        per_class={c: (min(v), max(v)) for c, v in per_class.items()},
        flags=flags,
        **ci_info,
        share=sum(shares) / len(shares) if shares else None,
    )


def _not_estimable(by_cell, metric: str) -> list[str]:
    """Notes naming the classes absent from test, and the metrics not estimable (with why)."""
    notes = []
    absent = sorted(
        {c for rs in by_cell.values() for r in rs for c in _caveats(r).get("absent_classes", [])}
    )
    if absent:
        notes.append(f"{FLAGS['absent_classes'][0]} no test image of: {', '.join(absent)}")
    for (features, setting), records in by_cell.items():
        reasons = {r.metrics.get(metric, {}).get("reason") for r in records} - {None}
        for reason in sorted(reasons):
            notes.append(
                f"— {features} at {setting_label(setting)}: "
                f"{metric.replace('_', ' ')} not estimable ({reason})"
            )
    return notes


def _setting_order(s: Setting) -> tuple:
    return (2, 0) if s is None else (0 if s[0] == "fraction" else 1, float(s[1]))


def build_tables(results: Iterable[ProbeResult], *, metric: str = "accuracy") -> list[ResultTable]:
    """One table per (dataset, method) present in ``results``, in first-seen order.

    Args:
        metric: one of ``METRICS``; records without it are left out.

    Values print in percent (kappa as it is); ties for best are judged at the printed precision.
    """
    if metric not in METRICS:
        raise InvalidDataError(f"metric must be one of {', '.join(METRICS)}; got '{metric}'")
    scale = 1.0 if metric == "kappa" else 100.0
    groups: dict[tuple[str, str], dict[tuple[str, Setting], list[ProbeResult]]] = {}
    for r in results:
        key = (r.feature_name, setting_key(r.labels))
        groups.setdefault((r.dataset, r.method), {}).setdefault(key, []).append(r)
    tables = []
    for (dataset, method), by_cell in groups.items():
        cells = {}
        for (features, setting), records in by_cell.items():
            c = _cell(features, method, setting, records, metric)
            if c is not None:
                cells[(features, setting)] = c
        if not cells and not _not_estimable(by_cell, metric):
            continue
        settings = sorted({s for _, s in by_cell}, key=_setting_order)
        feature_names = list(dict.fromkeys(f for f, _ in by_cell))
        for s in settings:  # the best mean per column, at the printed precision
            column = [c for (f, st), c in cells.items() if st == s]
            if not column:
                continue
            top = max(round(c.mean * scale, _DIGITS[scale]) for c in column)
            for c in column:
                if round(c.mean * scale, _DIGITS[scale]) == top and len(column) > 1:
                    cells[(c.features, s)] = replace(c, best=True)
        tables.append(
            ResultTable(
                dataset=dataset,
                method=method,
                metric=metric,
                features=feature_names,
                settings=settings,
                cells=cells,
                notes=_notes(cells, settings, scale) + _not_estimable(by_cell, metric),
                scale=scale,
            )
        )
    return tables


def span_text(lo_hi: tuple[int, int]) -> str:
    lo, hi = lo_hi
    return str(lo) if lo == hi else f"{lo}–{hi}"


def setting_label(s: Setting, share: float | None = None) -> str:
    """('fraction', 0.01) -> '1%'; ('shots', 5) -> '5-shot'; None -> 'all labels'. With the
    ``share`` of train actually drawn, a fraction far from it reads '25% (10% asked)'."""
    if s is None:
        return "all labels"
    from embedstore.data.subsets import LabelSetting

    return LabelSetting(*s).display(share)


def column_label(t: ResultTable, s: Setting) -> str:
    """A table column's label: its setting, with the share of train its subsets really hold."""
    shares = [c.share for (_, st), c in t.cells.items() if st == s and c.share is not None]
    return setting_label(s, sum(shares) / len(shares) if shares else None)


def _notes(cells: dict[tuple[str, Setting], TableCell], settings: list[Setting], scale: float):
    notes = []
    for s in settings:
        column = [c for (_, st), c in cells.items() if st == s]
        flagged = [c for c in column if {"capped_classes", "uneven_classes"} & set(c.flags)]
        if flagged:
            per_class = flagged[0].per_class
            drawn = ", ".join(f"{k} {span_text(v)}" for k, v in per_class.items())
            notes.append(f"{setting_label(s)}: drawn per class over seeds: {drawn}")
    n_tests = sorted({c.n_test[0] for c in cells.values()})
    if n_tests and n_tests[0] < SMALL_TEST:
        n = n_tests[0]
        half = 1.96 * math.sqrt(0.8 * 0.2 / n) * scale
        notes.append(
            f"small test split: {n} rows; one row is {scale / n:.1f} points, and a binomial 95% "
            f"interval at 80% accuracy is ±{half:.0f} points: smaller differences are not "
            "evidence"
        )
    return notes

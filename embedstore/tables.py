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
- a test split too small for the interval to mean much.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from embedstore.data.subsets import setting_key
from embedstore.errors import InvalidDataError
from embedstore.report import METRICS, ProbeResult

__all__ = [
    "FLAGS",
    "SMALL_TEST",
    "Cell",
    "ResultTable",
    "build_tables",
    "setting_label",
    "span_text",
]

# A test split under this many rows gets a warning: one row is then over 1 point of accuracy and
# the binomial 95% interval of an accuracy near 80% is wider than ±8 points.
SMALL_TEST = 100

# flag -> (marker, footnote). The order is the order footnotes are printed in.
FLAGS: dict[str, tuple[str, str]] = {
    "one_subset": (
        "†",
        "one subset: every seed drew the same labelled rows, so the seeds are not replicates "
        "(no spread; left out of paired tests)",
    ),
    "capped": (
        "‡",
        "fewer labelled samples than asked in some class (train holds fewer); drawn per class "
        "below",
    ),
    "uneven": (
        "§",
        "whole patient groups: the labelled count per class differs from the setting; drawn "
        "per class below",
    ),
    "default_hparam": (
        "¶",
        "hyperparameter not validated (too few labels for CV): the fallback value was used",
    ),
}

Setting = tuple[str, float | int] | None


@dataclass(frozen=True)
class Cell:
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


@dataclass(frozen=True)
class ResultTable:
    """The cells of one dataset × method × metric, and the notes printed under the table."""

    dataset: str
    method: str
    metric: str
    features: list[str]
    settings: list[Setting]
    cells: dict[tuple[str, Setting], Cell]
    notes: list[str] = field(default_factory=list)

    def flags(self) -> list[str]:
        """The flags used by any cell, in ``FLAGS`` order."""
        used = {f for c in self.cells.values() for f in c.flags}
        return [f for f in FLAGS if f in used]


def _value(r: ProbeResult, metric: str) -> tuple[float, float | None] | None:
    m = r.metrics.get(metric)
    if not m or m.get("value") is None or not math.isfinite(m["value"]):
        return None
    lo, hi = m.get("ci_low"), m.get("ci_high")
    half = None if lo is None or hi is None else (hi - lo) / 2
    return float(m["value"]), half


def _flags(records: Sequence[ProbeResult], setting: Setting) -> tuple[str, ...]:
    flags = []
    digests = {r.labels.get("subset_digest") for r in records}
    if len(records) > 1 and len(digests) == 1 and None not in digests:
        flags.append("one_subset")
    if any(r.labels.get("capped_classes") for r in records):
        flags.append("capped")
    if setting is not None and setting[0] == "shots":
        capped = {c for r in records for c in r.labels.get("capped_classes", [])}
        drawn = [
            n for r in records for c, n in r.labels.get("per_class", {}).items() if c not in capped
        ]
        if any(n != setting[1] for n in drawn):
            flags.append("uneven")
    if any(str(r.selected_on).startswith("default") for r in records):
        flags.append("default_hparam")
    return tuple(flags)


def _cell(features: str, method: str, setting: Setting, records, metric: str) -> Cell | None:
    values = [(r, v) for r in records if (v := _value(r, metric)) is not None]
    if not values:
        return None
    records = [r for r, _ in values]
    xs = [v for _, (v, _) in values]
    mean = sum(xs) / len(xs)
    flags = _flags(records, setting)
    if "one_subset" in flags:
        spread, kind = None, "one subset"
    elif len(xs) > 1:
        spread = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        kind = "sd"
    elif values[0][1][1] is not None:
        spread, kind = values[0][1][1], "ci95"
    else:
        spread, kind = None, "none"
    per_class: dict[str, list[int]] = {}
    for r in records:
        for c, n in r.labels.get("per_class", {}).items():
            per_class.setdefault(c, []).append(int(n))
    n_lab = [int(r.labels.get("n_labelled", r.n_train)) for r in records]
    n_test = [int(r.n_test) for r in records]
    return Cell(
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
    )


def _setting_order(s: Setting) -> tuple:
    return (2, 0) if s is None else (0 if s[0] == "fraction" else 1, float(s[1]))


def build_tables(
    results: Iterable[ProbeResult], *, metric: str = "accuracy", scale: float = 100.0
) -> list[ResultTable]:
    """One table per (dataset, method) present in ``results``, in first-seen order.

    Args:
        metric: one of ``METRICS``; records without it are left out.
        scale: the factor printed values are multiplied by (100: percent); ties for best are
            judged at the printed precision (one decimal).
    """
    if metric not in METRICS:
        raise InvalidDataError(f"metric must be one of {', '.join(METRICS)}; got '{metric}'")
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
        if not cells:
            continue
        settings = sorted({s for _, s in cells}, key=_setting_order)
        features = list(dict.fromkeys(f for f, _ in cells))
        for s in settings:  # the best mean per column, at the printed precision
            column = [c for (f, st), c in cells.items() if st == s]
            top = max(round(c.mean * scale, 1) for c in column)
            for c in column:
                if round(c.mean * scale, 1) == top and len(column) > 1:
                    cells[(c.features, s)] = replace(c, best=True)
        tables.append(
            ResultTable(
                dataset=dataset,
                method=method,
                metric=metric,
                features=features,
                settings=settings,
                cells=cells,
                notes=_notes(cells, settings, scale),
            )
        )
    return tables


def span_text(lo_hi: tuple[int, int]) -> str:
    lo, hi = lo_hi
    return str(lo) if lo == hi else f"{lo}–{hi}"


def setting_label(s: Setting) -> str:
    """('fraction', 0.01) -> '1%'; ('shots', 5) -> '5-shot'; None -> 'all labels'."""
    if s is None:
        return "all labels"
    if s[0] == "fraction":
        return f"{float(s[1]) * 100:.3g}%"
    return f"{int(s[1])}-shot"


def _notes(cells: dict[tuple[str, Setting], Cell], settings: list[Setting], scale: float):
    notes = []
    for s in settings:
        column = [c for (_, st), c in cells.items() if st == s]
        flagged = [c for c in column if {"capped", "uneven"} & set(c.flags)]
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

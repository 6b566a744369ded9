"""The backbones x datasets table of a study, as in Anton et al. (2022): one table per method and
label setting, a row per feature set, a column per dataset, each cell the mean over seeds with
its 95% interval, the best per dataset in bold, the test n of every dataset under the table.

Records are grouped by (dataset, feature set, method, label setting) and averaged over seeds
first. A cell's interval: with several seeds, the t-interval of the mean over seeds; with one
record (or every seed on the same labelled subset), the record's own interval (bootstrap over
images or patients, or exact) - the caption says which. Rendered as Markdown, LaTeX (booktabs)
and CSV with the markers and footnotes of :mod:`embedstore.results.tables`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from embedstore.data.subsets import setting_key
from embedstore.errors import InvalidDataError
from embedstore.results.records import METRICS, ProbeResult
from embedstore.results.table_formats import tex
from embedstore.results.tables import FLAGS, Setting, _flags, setting_label

__all__ = ["STUDY_FORMATS", "StudyCell", "StudyTable", "render_study", "study_tables"]


@dataclass(frozen=True)
class StudyCell:
    """One (feature set, dataset): the metric averaged over seeds, with its 95% interval."""

    mean: float
    low: float | None
    high: float | None
    n_seeds: int
    n_test: int
    interval: str  # how low/high were made
    flags: tuple[str, ...] = ()
    best: bool = False


@dataclass(frozen=True)
class StudyTable:
    """Feature sets x datasets for one method, label setting and metric."""

    method: str
    setting: Setting
    metric: str
    features: list[str]
    datasets: list[str]
    cells: dict[tuple[str, str], StudyCell]
    n_test: dict[str, str] = field(default_factory=dict)  # dataset -> "n" or "n1–n2"
    scale: float = 100.0

    def values(self) -> dict[str, dict[str, float]]:
        """{dataset: {feature set: mean}} of the cells present (for ranks and tests)."""
        out: dict[str, dict[str, float]] = {}
        for (f, d), c in self.cells.items():
            out.setdefault(d, {})[f] = c.mean
        return out

    def caption(self) -> str:
        kinds = sorted({c.interval for c in self.cells.values()})
        metric = self.metric.replace("_", " ") + (" (%)" if self.scale == 100.0 else "")
        return (
            f"{self.method} at {setting_label(self.setting)}: {metric}, mean over seeds ± "
            f"half-width of the 95% interval ({'; '.join(kinds)}); bold: best per dataset"
        )

    def footnotes(self) -> list[str]:
        used = {f for c in self.cells.values() for f in c.flags}
        return [f"{FLAGS[f][0]} {FLAGS[f][1]}" for f in FLAGS if f in used]


def _metric(r: ProbeResult, metric: str) -> dict | None:
    m = r.metrics.get(metric)
    value = m.get("value") if m else None
    if m is None or value is None or not math.isfinite(value):
        return None
    return m


def _cell(records: list[ProbeResult], metric: str) -> StudyCell | None:
    from scipy.stats import t as student_t

    ms = [(r, m) for r in records if (m := _metric(r, metric)) is not None]
    if not ms:
        return None
    xs = [m["value"] for _, m in ms]
    mean = sum(xs) / len(xs)
    flags = _flags([r for r, _ in ms])
    n_test = max(int(r.n_test) for r, _ in ms)
    if len(xs) > 1 and "one_subset" not in flags:
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        half = float(student_t.ppf(0.975, len(xs) - 1)) * sd / math.sqrt(len(xs))
        return StudyCell(mean, mean - half, mean + half, len(xs), n_test,
                         f"t-interval over {len(xs)} seeds", flags)  # fmt: skip
    m = ms[0][1]
    if m.get("ci_low") is None or m.get("ci_high") is None:
        why = "one labelled subset, " if "one_subset" in flags else ""
        return StudyCell(mean, None, None, len(xs), n_test, f"no interval ({why}none recorded)",
                         flags)  # fmt: skip
    how = m.get("ci_method") or "95% CI of the record"
    if m.get("ci_unit"):
        how = f"{how.split(' over ')[0].split(',')[0]} over {m['ci_unit']}s"
    return StudyCell(mean, m.get("ci_low"), m.get("ci_high"), len(xs), n_test, how, flags)


def study_tables(results: Iterable[ProbeResult], *, metric: str = "accuracy") -> list[StudyTable]:
    """One table per (method, label setting) over the datasets of ``results``, first-seen order."""
    if metric not in METRICS:
        raise InvalidDataError(f"metric must be one of {', '.join(METRICS)}; got '{metric}'")
    scale = 1.0 if metric == "kappa" else 100.0
    groups: dict[tuple[str, Setting], dict[tuple[str, str], list[ProbeResult]]] = {}
    for r in results:
        key = (r.method, setting_key(r.labels))
        groups.setdefault(key, {}).setdefault((r.feature_name, r.dataset), []).append(r)
    tables = []
    for (method, setting), by_cell in groups.items():
        cells = {k: c for k, recs in by_cell.items() if (c := _cell(recs, metric)) is not None}
        if not cells:
            continue
        features = list(dict.fromkeys(f for f, _ in by_cell))
        datasets = list(dict.fromkeys(d for _, d in by_cell))
        digits = 1 if scale == 100.0 else 3
        for d in datasets:  # best per dataset, at the printed precision
            column = {f: c for (f, dd), c in cells.items() if dd == d}
            if len(column) < 2:
                continue
            top = max(round(c.mean * scale, digits) for c in column.values())
            for f, c in column.items():
                if round(c.mean * scale, digits) == top:
                    cells[(f, d)] = StudyCell(**{**c.__dict__, "best": True})
        n_test = {}
        for d in datasets:
            ns = sorted({c.n_test for (_, dd), c in cells.items() if dd == d})
            n_test[d] = "—" if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        tables.append(StudyTable(method, setting, metric, features, datasets, cells, n_test, scale))
    return tables


def cell_text(c: StudyCell | None, scale: float) -> tuple[str, str]:
    """('72.3 ± 1.2', '†') for a cell; ('—', '') when absent. An interval that is not symmetric
    about the mean (an exact interval near 0 or 100%) prints as its ends: '100.0 (79.4–100.0)'."""
    if c is None:
        return "—", ""
    d = 1 if scale == 100.0 else 3
    text = f"{c.mean * scale:.{d}f}"
    if c.low is not None and c.high is not None:
        half = (c.high - c.low) / 2
        if abs((c.high - c.mean) - (c.mean - c.low)) > 0.2 * half:
            text += f" ({c.low * scale:.{d}f}–{c.high * scale:.{d}f})"
        else:
            text += f" ± {half * scale:.{d}f}"
    return text, "".join(FLAGS[f][0] for f in c.flags)


def to_markdown(tables: Sequence[StudyTable]) -> str:
    parts = []
    for t in tables:
        lines = [f"**{t.caption()}**", "", "| features | " + " | ".join(t.datasets) + " |"]
        lines.append("|:--|" + "--:|" * len(t.datasets))
        for f in t.features:
            row = [f.replace("|", "\\|")]
            for d in t.datasets:
                c = t.cells.get((f, d))
                text, marks = cell_text(c, t.scale)
                row.append((f"**{text}**" if c is not None and c.best else text) + marks)
            lines.append("| " + " | ".join(row) + " |")
        lines.append("| test n | " + " | ".join(t.n_test[d] for d in t.datasets) + " |")
        lines += [""] + [f"{n}  " for n in t.footnotes()]
        parts.append("\n".join(lines).rstrip())
    return "\n\n".join(parts) + "\n"


def to_latex(tables: Sequence[StudyTable]) -> str:
    parts = []
    for t in tables:
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{tex(t.caption())}}}",
            rf"\begin{{tabular}}{{l{'r' * len(t.datasets)}}}",
            r"\toprule",
            " & ".join(["features"] + [tex(d) for d in t.datasets]) + r" \\",
            r"\midrule",
        ]
        for f in t.features:
            row = [tex(f)]
            for d in t.datasets:
                c = t.cells.get((f, d))
                text, marks = cell_text(c, t.scale)
                text = tex(text)
                row.append(
                    (rf"\textbf{{{text}}}" if c is not None and c.best else text) + tex(marks)
                )
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\midrule", " & ".join(["test $n$"] + [tex(t.n_test[d]) for d in t.datasets])
                  + r" \\", r"\bottomrule", r"\end{tabular}"]  # fmt: skip
        notes = t.footnotes()
        if notes:
            lines.append(r"\par\smallskip\footnotesize")
            lines += [tex(n) + r"\\" for n in notes]
        lines.append(r"\end{table}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def to_csv(tables: Sequence[StudyTable]) -> str:
    """Tidy: one row per cell, values as fractions."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "setting", "metric", "features", "dataset", "mean", "ci_low",
                "ci_high", "interval", "n_seeds", "n_test", "best", "flags"])  # fmt: skip
    for t in tables:
        for (f, d), c in t.cells.items():
            w.writerow([t.method, setting_label(t.setting), t.metric, f, d, f"{c.mean:.6g}",
                        "" if c.low is None else f"{c.low:.6g}",
                        "" if c.high is None else f"{c.high:.6g}", c.interval, c.n_seeds,
                        c.n_test, int(c.best), ";".join(c.flags)])  # fmt: skip
    return buf.getvalue()


STUDY_FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def render_study(tables: Sequence[StudyTable], fmt: str) -> str:
    """The study tables in one of ``STUDY_FORMATS``."""
    if fmt not in STUDY_FORMATS:
        raise InvalidDataError(f"format must be one of {', '.join(STUDY_FORMATS)}; got '{fmt}'")
    return STUDY_FORMATS[fmt](tables)

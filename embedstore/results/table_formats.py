"""Result tables as Markdown, LaTeX (booktabs) and CSV: see :mod:`embedstore.results.tables`."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from embedstore.results.tables import (
    FLAGS,
    ResultTable,
    Setting,
    TableCell,
    column_label,
    setting_label,
    span_text,
)

__all__ = [
    "FORMATS",
    "caption",
    "footnotes",
    "format_cell",
    "n_labelled_text",
    "render",
    "test_n_text",
    "tex",
    "to_csv",
    "to_latex",
    "to_markdown",
]


def format_cell(c: TableCell | None, t: ResultTable) -> tuple[str, str]:
    """('72.3 ± 1.2', '†‡') for a cell; ('—', '') when absent."""
    if c is None:
        return "—", ""
    d = t.digits
    text = f"{c.mean * t.scale:.{d}f}"
    if c.spread is not None:
        text += f" ± {c.spread * t.scale:.{d}f}"
    return text, "".join(FLAGS[f][0] for f in c.flags)


def caption(t: ResultTable) -> str:
    kinds = {c.spread_kind for c in t.cells.values()}
    seeds = sorted({c.n_seeds for c in t.cells.values() if c.spread_kind == "sd"})
    spread = []
    if "sd" in kinds:
        spread.append(f"± s.d. over {span_text((seeds[0], seeds[-1]))} seeds")
    if "ci95" in kinds:
        spread.append(f"± half-width of the 95% CI (single run{_ci_text(t)})")
    metric = t.metric.replace("_", " ")
    unit = " (%)" if t.scale == 100.0 else ""
    return f"{t.dataset}, {t.method}: {metric}{unit}, mean {'; '.join(spread)}".rstrip()


def _ci_text(t: ResultTable) -> str:
    """'; percentile bootstrap over patients', from the cells' own interval descriptions."""
    pairs = sorted(
        {(c.ci_method, c.ci_unit) for c in t.cells.values() if c.spread_kind == "ci95"} - {("", "")}
    )
    if not pairs:
        return ""
    methods = sorted({m.split(",")[0].split(" over ")[0] for m, _ in pairs if m})
    unit = sorted({u for _, u in pairs if u})
    text = "; " + " / ".join(methods) if methods else ""
    return text + (f"; unit: {' / '.join(unit)}" if unit else "")


def n_labelled_text(t: ResultTable, s: Setting) -> str:
    column = [c for (_, st), c in t.cells.items() if st == s]
    if not column:
        return "—"
    lo = min(c.n_labelled[0] for c in column)
    hi = max(c.n_labelled[1] for c in column)
    return span_text((lo, hi))


def test_n_text(t: ResultTable, features: str) -> str:
    cells = [c for (f, _), c in t.cells.items() if f == features]
    if not cells:
        return "—"
    return span_text((min(c.n_test[0] for c in cells), max(c.n_test[1] for c in cells)))


def footnotes(t: ResultTable) -> list[str]:
    return [f"{FLAGS[f][0]} {FLAGS[f][1]}" for f in t.flags()] + list(t.notes)


def to_markdown(tables: Sequence[ResultTable]) -> str:
    """GitHub-flavoured Markdown: one table per dataset × method, best per column in bold."""
    parts = []
    for t in tables:
        head = ["features", "test n"] + [
            f"{column_label(t, s)} (n={n_labelled_text(t, s)})" for s in t.settings
        ]
        lines = [f"**{caption(t)}**", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "|".join([":--", "--:"] + ["--:"] * len(t.settings)) + "|")
        for f in t.features:
            row = [f.replace("|", "\\|"), test_n_text(t, f)]
            for s in t.settings:
                c = t.cells.get((f, s))
                text, marks = format_cell(c, t)
                row.append((f"**{text}**" if c is not None and c.best else text) + marks)
            lines.append("| " + " | ".join(row) + " |")
        lines += [""] + [f"{note}  " for note in footnotes(t)]
        parts.append("\n".join(lines).rstrip())
    return "\n\n".join(parts) + "\n"


_LATEX_MARK = {
    "†": r"\textsuperscript{\dag}",
    "‡": r"\textsuperscript{\ddag}",
    "§": r"\textsuperscript{\S}",
    "¶": r"\textsuperscript{\P}",
    "‖": r"\textsuperscript{$\|$}",
    "#": r"\textsuperscript{\#}",
    "∅": r"\textsuperscript{$\emptyset$}",
}
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "–": "--",
    "×": r"$\times$",
}


def tex(text: str) -> str:
    """Escape LaTeX specials in names and notes; footnote markers become superscripts."""
    return "".join(_LATEX_MARK.get(ch, _TEX_ESCAPES.get(ch, ch)) for ch in text)


_tex = tex


def to_latex(tables: Sequence[ResultTable]) -> str:
    """LaTeX tables using booktabs (\\toprule, \\midrule, \\bottomrule); best per column bold."""
    parts = []
    for t in tables:
        cols = "l" + "r" + "r" * len(t.settings)
        head = ["features", "test $n$"] + [
            f"{_tex(column_label(t, s))} ($n$={_tex(n_labelled_text(t, s))})" for s in t.settings
        ]
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{_tex(caption(t))}}}",
            rf"\begin{{tabular}}{{{cols}}}",
            r"\toprule",
            " & ".join(head) + r" \\",
            r"\midrule",
        ]
        for f in t.features:
            row = [_tex(f), _tex(test_n_text(t, f))]
            for s in t.settings:
                c = t.cells.get((f, s))
                text, marks = format_cell(c, t)
                text = _tex(text)
                if c is not None and c.best:
                    text = rf"\textbf{{{text}}}"
                row.append(text + "".join(_LATEX_MARK[m] for m in marks))
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        notes = footnotes(t)
        if notes:
            lines.append(r"\par\smallskip\footnotesize")
            lines += [_tex(n) + r"\\" for n in notes]
        lines.append(r"\end{table}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


CSV_COLUMNS = (
    "dataset",
    "method",
    "metric",
    "features",
    "setting",
    "mean",
    "spread",
    "spread_kind",
    "n_seeds",
    "n_labelled_min",
    "n_labelled_max",
    "n_test_min",
    "n_test_max",
    "best",
    "flags",
    "per_class",
)


def to_csv(tables: Sequence[ResultTable]) -> str:
    """One row per cell (tidy: ready for pandas / R), values as fractions, flags by name."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for t in tables:
        for f in t.features:
            for s in t.settings:
                c = t.cells.get((f, s))
                if c is None:
                    continue
                w.writerow(
                    [
                        t.dataset,
                        t.method,
                        t.metric,
                        f,
                        setting_label(s),
                        f"{c.mean:.6g}",
                        "" if c.spread is None else f"{c.spread:.6g}",
                        c.spread_kind,
                        c.n_seeds,
                        *c.n_labelled,
                        *c.n_test,
                        int(c.best),
                        ";".join(c.flags),
                        ";".join(f"{k}={span_text(v)}" for k, v in c.per_class.items()),
                    ]
                )
    return buf.getvalue()


def render(tables: Sequence[ResultTable], fmt: str) -> str:
    """The tables in one of ``FORMATS`` ('markdown', 'latex', 'csv')."""
    return FORMATS[fmt](tables)


FORMATS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}

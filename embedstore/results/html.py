"""One self-contained HTML report of a study: tables, figures, tests, caveats, provenance.

The page opens offline: no scripts, fonts or style sheets from anywhere; figures are inline SVG
(matplotlib), styles one inline ``<style>`` block. Sections, each present when the records
allow it:

1. the study table per method and label setting (:mod:`embedstore.results.study_table`);
2. ranks across datasets with the Friedman test, the Nemenyi critical difference, the
   critical-difference diagram and pairwise Wilcoxon-Holm tests (:mod:`.ranking`);
3. label-efficiency curves per dataset (:func:`embedstore.results.figures.sweep_figure`);
4. paired comparisons on the same test images, from the saved predictions (:mod:`.paired`),
   and the across-seed comparisons of :func:`embedstore.results.seeds.compare_feature_sets`;
5. every record caveat as a numbered footnote;
6. the provenance of every array used (backbone, weights sha256 and whether verified, software
   versions, when extracted).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from typing import Any

from embedstore._version import __version__
from embedstore.results.predictions import Predictions
from embedstore.results.records import ProbeResult

__all__ = ["build_html", "notes", "page", "record_id", "table"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}th,td{padding:.25em .7em;text-align:right;
border-bottom:1px solid #e4e4e4}th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #444}p.cap{font-weight:600;margin:1em 0 .2em}
tr.n td{border-top:2px solid #444;color:#555}.note{color:#555;font-size:.92em}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}code{font-size:.9em}
ol.caveats li{margin:.2em 0}details{margin:.3em 0}
"""


def record_id(r: ProbeResult) -> str | None:
    """A record's stable id (the ``record_id`` field, or ``extra["record_id"]``), if it has one."""
    rid = getattr(r, "record_id", None) or r.extra.get("record_id")
    return None if rid is None else str(rid)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "",
           last_row_class: str = "") -> str:  # fmt: skip
    """An HTML table; cells are already-escaped HTML."""
    out = [f'<p class="cap">{caption}</p>'] if caption else []
    out.append("<table>")
    out.append("<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{last_row_class}"' if last_row_class and i == len(rows) - 1 else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _notes(lines: Sequence[str]) -> str:
    return "".join(f'<p class="note">{escape(n)}</p>' for n in lines)


table, notes = _table, _notes  # the report's look, for other pages (the audit's)


def page(title: str, body: Sequence[str], css: str = "") -> str:
    """One self-contained page: the report's inline style (plus ``css``) and ``body``'s parts."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}{css}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


def _diff(m) -> str:
    """'+3.1 (+1.0 to +5.2)' points for a paired difference; '—' where there is none."""
    if m is None or m.diff is None:
        return "—"
    if m.ci_low is None or m.ci_high is None:
        return f"{m.diff * 100:+.1f}"
    return f"{m.diff * 100:+.1f} ({m.ci_low * 100:+.1f} to {m.ci_high * 100:+.1f})"


def _study_section(records: Sequence[ProbeResult], metric: str) -> list[str]:
    from embedstore.results.cd_diagram import cd_figure, figure_svg
    from embedstore.results.ranking import rank_feature_sets
    from embedstore.results.study_table import cell_text, study_tables
    from embedstore.results.tables import setting_label

    out = ["<h2>Study table</h2>"]
    for t in study_tables(records, metric=metric):
        rows = []
        for f in t.features:
            row = [escape(f)]
            for d in t.datasets:
                c = t.cells.get((f, d))
                text, marks = cell_text(c, t.scale)
                text = escape(text) + (f"<sup>{escape(marks)}</sup>" if marks else "")
                row.append(f"<b>{text}</b>" if c is not None and c.best else text)
            rows.append(row)
        rows.append(["test n"] + [escape(t.n_test[d]) for d in t.datasets])
        out.append(
            '<section class="study">'
            + _table(["features"] + [escape(d) for d in t.datasets], rows, escape(t.caption()), "n")
            + _notes(t.footnotes())
        )
        rk = rank_feature_sets(t)
        label = f"{t.method} at {setting_label(t.setting)}"
        if len(t.datasets) < 2:  # one dataset: no ranks, tests or diagram across datasets
            out.append('<p class="note">One dataset: ranks, the Friedman test and the '
                       "critical-difference diagram need two or more.</p></section>")  # fmt: skip
            continue
        out.append(f"<h3>Ranks across datasets: {escape(label)}</h3>")
        rank_rows = [[escape(f), f"{rk.mean_rank[f]:.2f}"] + [
            f"{rk.ranks[d][f]:g}" for d in rk.datasets] for f in rk.features]  # fmt: skip
        out.append(_table(["features", "average rank"] + [escape(d) for d in rk.datasets],
                          rank_rows, "rank per dataset (1 = best)"))  # fmt: skip
        if rk.friedman_p is not None:
            out.append(
                f'<p class="friedman">Friedman chi² = {rk.friedman_stat:.3f}, p = '
                f"{_p(rk.friedman_p)} over {len(rk.datasets)} datasets and "
                f"{len(rk.features)} feature sets; Nemenyi critical difference CD = {rk.cd:.2f} "
                f"(alpha = {rk.alpha})</p>"
            )
        out.append(_notes(rk.notes))
        if len(rk.datasets) < 2:  # datasets left out of the ranks: nothing across to draw
            out.append("</section>")
            continue
        out.append(
            f'<figure class="cd">{figure_svg(cd_figure(rk))}<figcaption>'
            "Critical-difference diagram (Demšar 2006): thick bars join feature sets whose "
            "average ranks differ by less than CD</figcaption></figure>"
        )
        if rk.pairs:
            prs = [[escape(p.a), escape(p.b), f"{p.wins}/{p.losses}", _p(p.wilcoxon_p),
                    _p(p.wilcoxon_p_holm), _p(p.nemenyi_p)] for p in rk.pairs]  # fmt: skip
            out.append(_table(["a", "b", "datasets a wins/loses", "Wilcoxon p",
                               "Wilcoxon p (Holm)", "Nemenyi p"], prs,
                              "pairwise tests over datasets (unit: dataset)"))  # fmt: skip
        out.append("</section>")
    return out


def _curves_section(records: Sequence[ProbeResult], metric: str) -> list[str]:
    from embedstore.data.subsets import setting_key
    from embedstore.results.cd_diagram import figure_svg
    from embedstore.results.figures import sweep_figure

    out = []
    for d in dict.fromkeys(r.dataset for r in records):
        rs = [r for r in records if r.dataset == d and setting_key(r.labels) is not None]
        if len({setting_key(r.labels) for r in rs}) < 2:
            continue
        fig = sweep_figure(rs, metric=metric)  # the caption names the dataset
        out.append(f'<figure class="curve">{figure_svg(fig)}<figcaption>{escape(d)}: '
                   f"label-efficiency curves</figcaption></figure>")  # fmt: skip
    if not out:
        return []
    return ["<h2>Label-efficiency curves</h2>"] + out


def _paired_section(
    records: Sequence[ProbeResult],
    predictions: Mapping[str, Predictions],
    pairs: Sequence[tuple[str, str]],
    metric: str,
) -> list[str]:
    from embedstore.data.subsets import setting_key
    from embedstore.results.paired import compare_records
    from embedstore.results.seeds import compare_feature_sets
    from embedstore.results.tables import setting_label

    out = ["<h2>Paired comparisons</h2>"]
    rows = []
    for (d, method, setting, seed), c in compare_records(records, predictions, pairs=pairs):
        cells = [_diff(c.metrics.get(key)) for key in ("accuracy", "auc")]
        rows.append([escape(f"{d} / {method} / {setting_label(setting)} / seed {seed}"),
                     escape(f"{c.a} − {c.b}"), *cells,
                     _p(c.delong.p_value) if c.delong else "—",
                     _p(c.p_holm.get("delong")),
                     _p(c.mcnemar.p_value) if c.mcnemar else "—",
                     _p(c.p_holm.get("mcnemar")),
                     escape(f"{c.unit} ({c.n_units})")])  # fmt: skip
    if rows:
        out.append(_table(
            ["test split", "a − b", "accuracy diff (95% CI)", "AUC diff (95% CI)", "DeLong p",
             "DeLong p (Holm)", "McNemar exact p", "McNemar p (Holm)", "bootstrap unit"],
            rows, "the same test images: paired percentile bootstrap of the difference (points), "
            "DeLong's test (binary AUC) and McNemar's exact test (accuracy), unit: image"))  # fmt: skip
    else:
        out.append('<p class="note">No saved per-image predictions for these records (run '
                   "with --predictions): no tests on the same test images.</p>")  # fmt: skip
    seed_lines = []
    for d in dict.fromkeys(r.dataset for r in records):
        rs = [r for r in records if r.dataset == d and setting_key(r.labels) is not None]
        seed_lines += [f"{d}: {c.describe()}" for c in compare_feature_sets(rs, metric=metric)]
    if seed_lines:
        out.append("<h3>Across seeds (paired by seed; Wilcoxon signed-rank)</h3>")
        out.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in seed_lines) + "</ul>")
    return out


def _caveats_section(records: Sequence[ProbeResult]) -> list[str]:
    from embedstore.results.caveats import describe
    from embedstore.results.tables import FLAGS, _caveats

    notes: dict[str, list[str]] = {}
    for r in records:
        where = f"{r.dataset} / {r.feature_name} / {r.method} / seed {r.seed}"
        for name, detail in _caveats(r).items():
            mark = FLAGS.get(name, ("",))[0]
            notes.setdefault(f"{mark} {describe(name, detail)}".strip(), []).append(where)
        for metric, m in r.metrics.items():
            if m.get("reason"):
                notes.setdefault(f"{metric} not estimable: {m['reason']}", []).append(where)
    if not notes:
        return ["<h2>Caveats</h2>", '<p class="note">None of the records carries a caveat.</p>']
    items = "".join(
        f"<li>{escape(text)} <span class='note'>({escape('; '.join(sorted(set(w))[:6]))}"
        f"{' …' if len(set(w)) > 6 else ''})</span></li>"
        for text, w in notes.items()
    )
    return ["<h2>Caveats</h2>", f'<ol class="caveats">{items}</ol>']


def _provenance_section(records: Sequence[ProbeResult]) -> list[str]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        for backbone, prov in (r.provenance or {}).items():
            seen.setdefault((r.dataset, backbone), prov if isinstance(prov, dict) else {})
    rows = []
    for (d, b), p in seen.items():
        sha = str(p.get("weights_sha256") or "—")
        verified = p.get("weights_verified", p.get("verified"))
        software = p.get("software") or {}
        soft = (
            ", ".join(f"{k} {v}" for k, v in software.items())
            if isinstance(software, dict)
            else str(software)
        )
        rows.append([escape(d), escape(b), f'<code title="{escape(sha)}">{escape(sha[:16])}</code>',
                     "yes" if verified is True else "no" if verified is False else "—",
                     escape(soft or "—"), escape(str(p.get("extracted_at") or p.get("extracted") or "—")),
                     f"<details><summary>all</summary><pre>{escape(json.dumps(p, indent=1, default=str))}"
                     "</pre></details>"])  # fmt: skip
    if not rows:
        return ["<h2>Provenance</h2>", '<p class="note">The records carry no provenance.</p>']
    return ["<h2>Provenance</h2>", _table(
        ["dataset", "array (backbone)", "weights sha256", "verified", "software", "extracted",
         "record"], rows, "every array the numbers were computed from")]  # fmt: skip


def build_html(
    records: Sequence[ProbeResult],
    *,
    predictions: Mapping[str, Predictions] | None = None,
    metric: str = "accuracy",
    pairs: Sequence[tuple[str, str]] = (),
    title: str = "embedstore report",
    sources: Sequence[str] = (),
) -> str:
    """The report page as one HTML string (module docstring); nothing is fetched when it opens.

    Args:
        predictions: {record id: predictions} (:func:`~embedstore.results.predictions.
            read_predictions`); records are matched by :func:`record_id`.
        pairs: feature-set pairs to compare besides every one against the best.
        sources: the results files, named in the header.
    """
    records = list(records)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">{len(records)} records'
        + (f" from {escape(', '.join(sources))}" if sources else "")
        + f"; metric: {escape(metric.replace('_', ' '))}; made by embedstore {escape(__version__)}"
        f" at {when}</p>",
    ]
    body += _study_section(records, metric)
    body += _curves_section(records, metric)
    body += _paired_section(records, predictions or {}, pairs, metric)
    body += _caveats_section(records)
    body += _provenance_section(records)
    return page(title, body)

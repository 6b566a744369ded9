"""The audit as one self-contained HTML page, with thumbnails of what a reader must look at.

Built with the study report's page machinery (:func:`embedstore.results.html.page`: one inline
style block, nothing fetched when it opens). Sections: the counts per finding and each backbone's
duplicate threshold; candidate duplicates (both images side by side with their ids and splits,
the cosine per backbone, whether they share a patient) and what they added to the test metrics;
patients in several splits; suspected label errors per backbone (image, id, given and suggested
label, self-confidence) with the estimated noise rates; shortcuts; notes.

Thumbnails (``THUMB_PX`` on the long side, smaller images enlarged with sharp pixels; JPEG, as
``data:`` URIs) are read from the source the
store records for the dataset (:func:`embedstore.data.recorded.open_dataset_source`) or from
``source``. When it cannot be reopened the page has no images and says why once; the first
``top`` pairs and label errors are shown and the page says how many were left out.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps

from embedstore.errors import EmbedstoreError, InvalidDataError

if TYPE_CHECKING:
    from embedstore.auditing.result import AuditResult
    from embedstore.data import Source

__all__ = [
    "HTML_TOP",
    "THUMB_PX",
    "AuditPage",
    "audit_html",
    "check_page_options",
    "write_audit_html",
]

HTML_TOP = 50  # pairs and label errors (per backbone) shown with thumbnails
THUMB_PX = 96

_CSS = """
figure.t{margin:0;display:inline-block;text-align:center}figure.t img{border:1px solid #ccc}
figure.t figcaption{font-size:.85em;color:#555;word-break:break-all;max-width:16em}
.missing{color:#a00;font-size:.85em;display:block}
"""


@dataclass(frozen=True)
class AuditPage:
    """The page, how many thumbnails it holds, and why it has none (None when it has them)."""

    html: str
    n_thumbnails: int
    no_thumbnails: str | None


class _Thumbs:
    """Thumbnails of store rows, read once each from the dataset's source (None: no source)."""

    def __init__(self, src: Source | None, index: Any) -> None:
        self.src, self.index, self.made = src, index, 0
        self.cache: dict[int, str | None] = {}

    def cell(self, row: int, caption: str) -> str:
        """A thumbnail over its caption; the caption alone when there is no source."""
        if self.src is None:
            return caption
        if row not in self.cache:
            self.cache[row] = self._uri(self.src, row)
        uri = self.cache[row]
        img = (f'<img src="{uri}" alt="{caption}">' if uri is not None
               else '<span class="missing">image unreadable</span>')  # fmt: skip
        return f'<figure class="t">{img}<figcaption>{caption}</figcaption></figure>'

    def _uri(self, src: Source, row: int) -> str | None:
        try:
            image = src.load_rgb(int(self.index[row]))
        except (EmbedstoreError, OSError):  # a file gone or damaged since extraction
            return None
        small = max(image.size) < THUMB_PX  # 28 px MedMNIST: enlarged, pixels kept sharp
        method = Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS
        image = ImageOps.contain(image, (THUMB_PX, THUMB_PX), method=method)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=85)
        self.made += 1
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _open_thumbs(result: AuditResult, source: Any) -> tuple[_Thumbs, str | None]:
    from embedstore.data.recorded import open_dataset_source
    from embedstore.store import open_store

    try:
        src, index = open_dataset_source(open_store(result.store), result.dataset, source)
    except EmbedstoreError as e:  # SourceError, or the source's own complaint
        return _Thumbs(None, None), f"no thumbnails: {e}"
    return _Thumbs(src, index), None


def _check_top(top: int) -> None:
    if int(top) < 1:
        raise InvalidDataError(
            f"the number of pairs and label errors shown (--html-top) must be at least 1; got {top}"
        )


def check_page_options(path: str | os.PathLike[str], top: int) -> None:
    """Raise unless ``path`` names an .html file and ``top`` is at least 1 (checked before the
    audit runs)."""
    from embedstore.results.outputs import check_html_path

    check_html_path(path)
    _check_top(top)


def _metric(m: dict[str, Any] | None) -> str:
    from embedstore.auditing.records import metric_text

    return escape(metric_text(m))


def _left_out(shown: int, total: int, what: str) -> list[str]:
    if total <= shown:
        return []
    return [f"{total - shown} more {what} not shown (--html-top sets how many are)."]


def _duplicates(result: AuditResult, thumbs: _Thumbs, top: int) -> list[str]:
    from embedstore.results.html import notes, table

    out = ["<h2>Candidate duplicates</h2>"]
    if not result.duplicates:
        return out + [notes(["No pair above any backbone's threshold."])]
    per = ", ".join(f"{k}: {v}" for k, v in result.duplicate_counts.items())
    rows = []
    for p in result.duplicates[:top]:
        sims = "<br>".join(f"{escape(b)} {s:.4f}" for b, s in p.similarity.items())
        same = "—" if p.same_group is None else ("yes" if p.same_group else "no")
        rows.append([
            thumbs.cell(p.a, escape(f"{p.id_a} ({p.split_a})")),
            thumbs.cell(p.b, escape(f"{p.id_b} ({p.split_b})")), sims, same,
        ])  # fmt: skip
    out.append(table(["image a", "image b", "cosine per backbone", "same patient"], rows,
                     escape(f"{len(result.duplicates)} pairs ({per}), most flagged first")))  # fmt: skip
    out.append(notes(_left_out(len(rows), len(result.duplicates), "pairs")))
    leak = []
    for name, v in result.leak.items():
        for probe in ("logistic", "knn"):
            a, b = v.get(probe, {}).get("all", {}), v.get(probe, {}).get("without_flagged", {})
            for metric in ("accuracy", "auc"):
                leak.append([escape(name), probe, metric, _metric(a.get(metric)),
                             _metric(b.get(metric))])  # fmt: skip
    if leak:
        out.append(table(["backbone", "probe", "metric", "all test rows", "without flagged"],
                         leak, "test metrics with and without the flagged test rows (95% CI)"))  # fmt: skip
    return out


def _patients(result: AuditResult, top: int) -> list[str]:
    from embedstore.results.html import notes, table

    out = ["<h2>Patients in more than one split</h2>"]
    if not result.patients:
        return out + [notes(["None found." if result.has_groups else "No patient groups."])]
    rows = [[escape(p.group), escape(", ".join(p.splits)),
             escape("; ".join(f"{s}: {', '.join(ids)}" for s, ids in p.ids.items()))]
            for p in result.patients[:top]]  # fmt: skip
    out.append(table(["patient", "splits", "rows"], rows, f"{len(result.patients)} patients"))
    return out + [notes(_left_out(len(rows), len(result.patients), "patients"))]


def _label_errors(result: AuditResult, thumbs: _Thumbs, top: int) -> list[str]:
    from embedstore.results.html import notes, table

    out = ["<h2>Suspected label errors</h2>"]
    if not result.label_summary:
        return out + [notes(["Not computed (the label-error section needs single labels)."])]
    for name, summary in result.label_summary.items():
        issues = result.label_issues.get(name, [])[:top]
        rows = [[thumbs.cell(i.row, escape(i.id)), escape(i.given), escape(i.suggested),
                 f"{i.self_confidence:.3f}"] for i in issues]  # fmt: skip
        cap = (f"{name}: {summary['n_issues']} confident-learning issues among "
               f"{summary['n_scored']} train+val rows; lowest self-confidence first")  # fmt: skip
        out.append(table(["image and id", "given", "suggested", "self-confidence"], rows,
                         escape(cap)))  # fmt: skip
        out.append(notes(_left_out(len(rows), summary["n_issues"], "suspected label errors")))
    return out


def _shortcuts(result: AuditResult) -> list[str]:
    from embedstore.results.html import table

    if not result.shortcuts:
        return []
    rows = []
    for s in result.shortcuts:
        drops = [v["drop"] for v in s.per_value if "drop" in v]
        flag = "SHORTCUT" if s.flagged else ("reads it" if s.reads_attribute else "")
        rows.append([escape(s.backbone), escape(s.attribute),
                     f"{_metric(s.balanced_accuracy)} ({s.chance:.2f})", _metric(s.auc),
                     f"{max(drops):.3f}" if drops else "—", flag])  # fmt: skip
    return ["<h2>Shortcuts</h2>", table(
        ["backbone", "attribute", "balanced accuracy (chance)", "AUC", "worst drop", "flag"],
        rows, "the attribute read from the embedding; the label across its values")]  # fmt: skip


def audit_html(result: AuditResult, *, top: int = HTML_TOP, source: Any = None) -> AuditPage:
    """The audit page (module docstring). ``source`` overrides the store's record of where the
    images are (a folder, .csv, .npz, 'demo' or a :class:`~embedstore.data.Source`)."""
    from embedstore._version import __version__
    from embedstore.results.html import notes, page, table

    if int(top) < 1:
        raise InvalidDataError(
            f"the number of pairs and label errors shown must be >= 1; got {top}"
        )
    thumbs, missing = _open_thumbs(result, source)
    title = f"embedstore audit of '{result.dataset}'"
    body = [f"<h1>{escape(title)}</h1>", notes([
        f"{result.store}: {result.n_samples} samples, task {result.task}, backbones "
        f"{', '.join(result.backbones)}; made by embedstore {__version__}"])]  # fmt: skip
    if missing:
        body.append(notes([missing]))
    counts = [[escape(k.replace("_", " ")), str(v)] for k, v in result.counts().items()]
    body.append(table(["finding", "count"], counts, "findings"))
    thr = [[escape(n), f"{t['threshold']:.4f}", f"{t['median_nn_similarity']:.4f}",
            escape(t["method"])] for n, t in result.thresholds.items()]  # fmt: skip
    body.append(table(["backbone", "duplicate threshold (cos ≥)", "median nearest-neighbour cos",
                       "search"], thr, "thresholds: " + escape(next(iter(
                           result.thresholds.values()), {}).get("rule", ""))))  # fmt: skip
    body += _duplicates(result, thumbs, top)
    body += _patients(result, top)
    body += _label_errors(result, thumbs, top)
    body += _shortcuts(result)
    if result.notes:
        body += ["<h2>Notes</h2>", notes(result.notes)]
    return AuditPage(page(title, body, _CSS), thumbs.made, missing)


def write_audit_html(
    result: AuditResult,
    path: str | os.PathLike[str],
    *,
    top: int = HTML_TOP,
    source: Any = None,
) -> AuditPage:
    """Write :func:`audit_html`'s page to ``path`` (an .html file, replaced)."""
    check_page_options(path, top)
    out = audit_html(result, top=top, source=source)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(out.html, encoding="utf-8")
    return out

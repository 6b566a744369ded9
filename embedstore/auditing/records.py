"""The audit as JSON records: one ``summary`` record, then one record per finding.

Kinds: ``summary`` (counts per finding, thresholds, notes), ``duplicate_pair``, ``leak_effect``
(one per backbone), ``patient_overlap``, ``label_issue`` (one per listed candidate and backbone),
``noise_rate`` (one per backbone), ``shortcut`` (one per backbone × attribute). Every record names
the store and dataset; a file holds the JSON records one per line (``--out audit.jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedstore.auditing.result import AuditResult

__all__ = ["audit_records", "metric_text", "write_records"]


def audit_records(result: AuditResult) -> list[dict[str, Any]]:
    """Every record of one audit, the summary first."""
    head = {"store": result.store, "dataset": result.dataset}
    out: list[dict[str, Any]] = [
        {
            "kind": "summary", **head, "backbones": result.backbones, "task": result.task,
            "n_samples": result.n_samples, "counts": result.counts(),
            "duplicate_counts": result.duplicate_counts, "thresholds": result.thresholds,
            "has_groups": result.has_groups, "splits_by_embedstore": result.splits_by_embedstore,
            "notes": result.notes,
        }
    ]  # fmt: skip
    out += [{"kind": "duplicate_pair", **head, **p.record()} for p in result.duplicates]
    out += [{"kind": "leak_effect", **head, "backbone": b, **v} for b, v in result.leak.items()]
    out += [{"kind": "patient_overlap", **head, **p.record()} for p in result.patients]
    for backbone, issues in result.label_issues.items():
        out += [{"kind": "label_issue", **head, "backbone": backbone, **i.record()} for i in issues]
    for backbone, summary in result.label_summary.items():
        out.append({"kind": "noise_rate", **head, "backbone": backbone, **summary})
    out += [{"kind": "shortcut", **head, **s.record()} for s in result.shortcuts]
    return out


def write_records(records: list[dict[str, Any]], path: str | Path) -> None:
    """Write records to ``path``, one JSON object per line (the file is replaced)."""
    text = "".join(json.dumps(r, allow_nan=False, default=_plain) + "\n" for r in records)
    Path(path).write_text(text, encoding="utf-8")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def metric_text(m: dict[str, Any] | None) -> str:
    """``{"value", "ci_low", "ci_high"}`` -> "0.912 [0.880, 0.940]"; "-" where there is none."""
    if not m or m.get("value") is None:
        return "-"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    return f"{m['value']:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")

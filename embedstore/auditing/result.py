"""What an audit found (:class:`AuditResult`), as data: :func:`embedstore.audit` fills it;
:mod:`~embedstore.auditing.records` writes it as JSON records and
:mod:`~embedstore.auditing.html` as a page with thumbnails."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditResult", "Progress"]


@dataclass
class AuditResult:
    """What :func:`audit` found; ``records()`` gives the JSON records, one per finding."""

    store: str
    dataset: str
    backbones: list[str]
    task: str
    n_samples: int
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: list[Any] = field(default_factory=list)  # DuplicatePair, most flagged first
    duplicate_counts: dict[str, int] = field(default_factory=dict)
    leak: dict[str, dict[str, Any]] = field(default_factory=dict)
    has_groups: bool = False
    splits_by_embedstore: bool = False
    patients: list[Any] = field(default_factory=list)  # PatientOverlap
    label_issues: dict[str, list[Any]] = field(default_factory=dict)  # backbone -> LabelIssue
    label_summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    shortcuts: list[Any] = field(default_factory=list)  # ShortcutResult
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of findings per section (label issues: the most in any backbone)."""
        issues = [s.get("n_issues", 0) for s in self.label_summary.values()]
        return {
            "duplicate_pairs": len(self.duplicates),
            "patients_in_several_splits": len(self.patients),
            "suspected_label_errors": max(issues, default=0),
            "shortcut_flags": sum(1 for s in self.shortcuts if s.flagged),
        }

    def records(self) -> list[dict[str, Any]]:
        """JSON-ready records: a summary, then one per finding (``"kind"`` says which)."""
        from embedstore.auditing.records import audit_records

        return audit_records(self)

    def write_html(self, path: str | os.PathLike[str], *, top: int | None = None,
                   source: Any = None) -> Any:  # fmt: skip
        """Write the audit page with thumbnails (:func:`~embedstore.auditing.html.
        write_audit_html`); ``top``: pairs and label errors shown (default ``HTML_TOP``);
        returns its :class:`~embedstore.auditing.html.AuditPage`."""
        from embedstore.auditing.html import HTML_TOP, write_audit_html

        return write_audit_html(self, path, top=HTML_TOP if top is None else top, source=source)


Progress = Callable[[str, int, int], None]  # (step description, steps done, steps in all)

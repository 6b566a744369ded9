"""Audits of a dataset from its stored embeddings alone: near-duplicates across and within splits
(and what they add to the headline probe), patients in two splits, suspected label errors, and
shortcuts a backbone can read (per-sample attributes stored with ``--meta-column``).

Parts: :mod:`~embedstore.auditing.search` (nearest neighbours in blocks, or FAISS),
:mod:`~embedstore.auditing.duplicates`, :mod:`~embedstore.auditing.leak`,
:mod:`~embedstore.auditing.patients`, :mod:`~embedstore.auditing.label_errors`,
:mod:`~embedstore.auditing.shortcuts`, :mod:`~embedstore.auditing.records`,
:mod:`~embedstore.auditing.html` (the page with thumbnails); :func:`audit` runs them all.
"""

from __future__ import annotations

from embedstore.auditing.api import audit
from embedstore.auditing.html import AuditPage, audit_html, write_audit_html
from embedstore.auditing.records import audit_records, write_records
from embedstore.auditing.result import AuditResult

__all__ = [
    "AuditPage",
    "AuditResult",
    "audit",
    "audit_html",
    "audit_records",
    "write_audit_html",
    "write_records",
]

"""Audits of a dataset from its stored embeddings alone: near-duplicates across and within splits
(and what they add to the headline probe), patients in two splits, suspected label errors, and
shortcuts a backbone can read (per-sample attributes stored with ``--meta-column``).

Parts: :mod:`~embedstore.auditing.search` (nearest neighbours in blocks, or FAISS),
:mod:`~embedstore.auditing.duplicates`, :mod:`~embedstore.auditing.leak`,
:mod:`~embedstore.auditing.patients`, :mod:`~embedstore.auditing.label_errors`,
:mod:`~embedstore.auditing.shortcuts`, :mod:`~embedstore.auditing.records`; :func:`audit` runs them all.
"""

from __future__ import annotations

from embedstore.auditing.api import AuditResult, audit
from embedstore.auditing.records import audit_records, write_records

__all__ = ["AuditResult", "audit", "audit_records", "write_records"]

"""Audits of a dataset from its stored embeddings alone: near-duplicates across and within splits
(and what they add to the headline probe), patients in two splits, suspected label errors, and
shortcuts a backbone can read (per-sample attributes stored with ``--meta-column``).

Parts: :mod:`~embedstore.audit.search` (nearest neighbours in blocks, or FAISS),
:mod:`~embedstore.audit.duplicates`, :mod:`~embedstore.audit.leak`,
:mod:`~embedstore.audit.patients`, :mod:`~embedstore.audit.label_errors`,
:mod:`~embedstore.audit.shortcuts`, :mod:`~embedstore.audit.records`; :func:`audit` runs them all.
"""

from __future__ import annotations

from embedstore.audit.api import AuditResult, audit
from embedstore.audit.records import audit_records, write_records

__all__ = ["AuditResult", "audit", "audit_records", "write_records"]

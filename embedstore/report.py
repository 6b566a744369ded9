"""Result records: one per (feature set, method[, labels, seed]), frozen, JSON-lines on disk."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedstore._version import __version__
from embedstore.errors import InvalidDataError

__all__ = ["METRICS", "ProbeResult", "check_metric", "write_jsonl", "read_jsonl", "format_metric"]

# The metric names a record can carry (embedstore.probes.metrics.classification_metrics): kappa
# only for ordinal tasks; few-shot episodes report accuracy only.
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auc", "kappa")


@dataclass(frozen=True)
class ProbeResult:
    """One evaluation: which features, which protocol, which metrics, chosen on what.

    ``metrics`` maps a metric name (accuracy, balanced_accuracy, macro_f1, auc, kappa) to
    ``{"value": v, "ci_low": lo, "ci_high": hi}``. ``selected_on`` names the data a
    hyperparameter was chosen on ("val", "train-cv", "none"); nothing is ever chosen on test.
    ``n_train`` is the rows the final model learned from, ``n_test`` the rows it was scored on.
    ``caveats`` says what a reader must know before trusting the numbers (capped or uneven
    classes, a fallback hyper-parameter, a choice at the edge of its grid, a small test split):
    see :mod:`embedstore.caveats`.
    """

    dataset: str
    features: tuple[str, ...]
    method: str
    protocol: dict[str, Any]
    metrics: dict[str, dict[str, float | None]]
    hyperparameters: dict[str, Any]
    selected_on: str
    seed: int
    n_train: int
    n_test: int
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    caveats: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_name(self) -> str:
        return "+".join(self.features)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        out["embedstore_version"] = __version__
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["features"] = tuple(d["features"])
        return cls(**d)


def write_jsonl(results: Iterable[Any], path: str | os.PathLike[str]) -> None:
    """Append records to a JSON-lines file, one line each, flushed per record."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as fh:
        for r in results:
            fh.write(json.dumps(r.to_dict(), default=json_default) + "\n")
            fh.flush()


def read_jsonl(path: str | os.PathLike[str]) -> list[ProbeResult]:
    """Read records back; a torn last line (an interrupted write) is ignored, others must parse."""
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(ProbeResult.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if i == len(lines) - 1:
                break
            raise InvalidDataError(
                f"{p}:{i + 1} is not an embedstore result record ({exc}); "
                "pass a results file written by embedstore, or another --out path"
            ) from None
    return out


def check_metric(results: Iterable[ProbeResult], metric: str) -> None:
    """Raise InvalidDataError unless some record carries ``metric``; the message lists those that do."""
    results = list(results)
    have = list(dict.fromkeys(m for r in results for m in r.metrics))
    if results and metric not in have:
        why = " (kappa is computed for ordinal tasks only)" if metric == "kappa" else ""
        raise InvalidDataError(
            f"metric '{metric}' is not in these results{why}; they have: {', '.join(have)}"
        )


def format_metric(m: dict[str, float | None] | None, scale: float = 100.0) -> str:
    """{'value': .912, 'ci_low': .9, 'ci_high': .93} -> '91.2 ± 1.5' (half-width of the CI)."""
    if not m or m.get("value") is None:
        return "—"
    v = m["value"] * scale
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None:
        return f"{v:.1f}"
    return f"{v:.1f} ± {(hi - lo) * scale / 2:.1f}"


def json_default(value: Any) -> Any:
    """numpy arrays and scalars as JSON values; anything else as its string."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)

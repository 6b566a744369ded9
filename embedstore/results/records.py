"""Result records: one type for probe, sweep, study and analysis results, JSON lines on disk.

One record per cell of an evaluation plan (:mod:`embedstore.engine`): a feature set, a method, a
label setting and a seed on one dataset. ``kind`` says which evaluation made it: ``"probe"`` (the
dataset's own splits, all labels) or ``"sweep"`` (a labelled subset of train); a study writes
both kinds. Analysis records (:class:`embedstore.analyze.records.AnalysisResult`) share the files
and this module's reader and writer.

One reader and one writer, one rule for a torn last line: a line that does not parse is accepted
only as the file's last line without its newline (a write cut off by a kill); the writer removes
such a tail before it appends, and never drops a line that parses. Fields are only ever added
(``RECORD_SCHEMA`` counts changes that are not additions).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedstore._version import __version__
from embedstore.errors import InvalidDataError

__all__ = [
    "METRICS",
    "RECORD_SCHEMA",
    "ProbeResult",
    "Record",
    "check_metric",
    "format_metric",
    "json_default",
    "read_jsonl",
    "read_records",
    "write_jsonl",
]

RECORD_SCHEMA = 1  # raised only when a field is renamed or changes meaning (fields are added)

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
    see :mod:`embedstore.results.caveats`.
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
    kind: str = "probe"  # "probe" (the dataset's splits, all labels) or "sweep" (label subsets)
    record_id: str = ""  # the cell's identity (embedstore.engine.plan.cell_id): resume key
    store: str = ""  # the store as the run named it
    status: str = "computed"  # or "not computed" / "skipped", with ``reason``
    reason: str = ""
    seconds: float | None = None  # wall time of the cell (not part of its identity)

    @property
    def feature_name(self) -> str:
        return "+".join(self.features)

    @property
    def computed(self) -> bool:
        return self.status == "computed"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        out["embedstore_version"] = __version__
        out["record_schema"] = RECORD_SCHEMA
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["features"] = tuple(d["features"])
        return cls(**d)


Record = ProbeResult  # the one record type; ``ProbeResult`` is its historical name


def write_jsonl(results: Iterable[Any], path: str | os.PathLike[str]) -> None:
    """Append records to a JSON-lines file, one line each, flushed per record.

    A torn tail (a last line without its newline, cut off by a kill) is removed first when it
    does not parse, and completed with its newline when it does. Appends are serialised with an
    advisory ``flock``, so that the ranks of one run may share the file.
    """
    p = Path(path)
    if p.exists() and p.is_dir():
        raise InvalidDataError(
            f"results file {p} is a folder; name a file, e.g. {p / 'results.jsonl'}"
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a+b") as fh, _flock(fh):
        _mend_tail(fh)
        for r in results:
            fh.write((json.dumps(r.to_dict(), default=json_default) + "\n").encode())
            fh.flush()


@contextlib.contextmanager
def _flock(fh):
    try:
        import fcntl
    except ImportError:  # not on POSIX: appends are not shared between processes there
        yield
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _mend_tail(fh) -> None:
    """Before an append: a last line without newline is kept (newline added) when it parses,
    and cut off when it does not (a write interrupted mid-line)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if not size:
        return
    fh.seek(max(0, size - 1))
    if fh.read(1) == b"\n":
        return
    fh.seek(0)
    text = fh.read()
    start = text.rfind(b"\n") + 1
    try:
        json.loads(text[start:])
    except ValueError:
        fh.truncate(start)
    else:
        fh.write(b"\n")
    fh.seek(0, os.SEEK_END)


def _lines(path: str | os.PathLike[str]):
    """(line number, parsed JSON) of every record line; the torn-line rule of the module doc."""
    p = Path(path)
    if not p.exists():
        return
    if p.is_dir():
        raise InvalidDataError(
            f"{p} is a folder; pass a results file (JSON lines) written by embedstore"
        )
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDataError(
            f"{p} is not a text file of embedstore result records (not UTF-8); pass the "
            "JSON-lines file that probe, sweep or study --out wrote"
        ) from None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if i == len(lines) - 1:  # the last line, without its newline: a torn write
                return
            raise InvalidDataError(
                f"{p}:{i + 1} is not an embedstore result record ({exc}); "
                "pass a results file written by embedstore, or another --out path"
            ) from None
        yield i + 1, d


def read_records(
    path: str | os.PathLike[str],
    *,
    analysis: bool = False,
    parse: Callable[[dict[str, Any]], Any] | None = None,
) -> list[Any]:
    """Every record of one kind family in a results file: probe/sweep records, or, with
    ``analysis``, analysis records, each made by ``parse`` (default ``ProbeResult.from_dict``;
    ``embedstore.analyze.records`` passes ``AnalysisResult.from_dict``)."""
    make = parse or ProbeResult.from_dict
    out: list[Any] = []
    for n, d in _lines(path):
        is_analysis = d.get("kind") == "analysis" or "analysis" in d
        if is_analysis != analysis:
            continue
        try:
            out.append(make(d))
        except (KeyError, TypeError) as exc:
            raise InvalidDataError(
                f"{path}:{n} is not an embedstore result record (missing {exc}); "
                "pass a results file written by embedstore, or another --out path"
            ) from None
    return out


def read_jsonl(path: str | os.PathLike[str]) -> list[ProbeResult]:
    """The probe, sweep and study records of a results file (analysis records are skipped)."""
    return read_records(path)


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
    value = m.get("value") if m else None
    if m is None or value is None:
        return "—"
    v = value * scale
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

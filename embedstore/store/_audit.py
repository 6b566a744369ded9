"""Every node's metadata checked before zarr parses it: so that a damaged ``zarr.json`` is one
line naming the node, never a traceback, and an edit that changes what a read returns is refused.

What is checked, from the raw ``zarr.json`` of a node (no chunk is read):

- it parses as JSON and is safe plain Zarr v3 (``_zipcheck.metadata_problems``);
- its attributes have the types the layout gives them: the root's ``embedstore_format`` an
  integer; a dataset's ``n_samples`` an integer, ``class_names`` a list of strings, ``task`` one
  of the task kinds; a backbone's ``complete`` true or false and ``provenance`` an object;
- metadata stays within the size limits (:data:`MAX_ATTRIBUTE_BYTES`, :data:`MAX_CLASSES`);
- shapes follow the layout (``_shapes``);
- the digests recorded when the node was written (``metadata_sha256``, in the dataset's and the
  backbone's attributes) still match: the sha256 of each array's ``zarr.json`` (shape, data type,
  chunks, codecs, fill value, attributes) and of the group's own identity attributes (a dataset's
  task, class names and their order, n_samples, split codes and data checksums; a backbone's
  ``complete`` flag and provenance). Stores written before these digests have none: not checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from embedstore.store._shapes import shape_problems
from embedstore.store._validate import DATA_ARRAYS, TASK_KINDS
from embedstore.store._zipcheck import MAX_ATTRIBUTE_BYTES, metadata_problems

RECORD = "metadata_sha256"
DATASET_KEYS = ("task", "class_names", "n_samples", "split_codes", "checksums")
BACKBONE_KEYS = ("complete", "provenance", "numerics")
BACKBONE_ARRAYS = (
    "embeddings", "progress", "checksums", "chunk_nbytes", "missing", "missing_reason",
)  # fmt: skip
MAX_CLASSES = 100_000
GONE = object()  # what ``get`` returns for a node without zarr.json
INVALID = None  # ... and for one whose zarr.json is not JSON (or empty)

Getter = Callable[[str], Any]


def metadata_sha256(meta: Any) -> str:
    """sha256 of a node's metadata (a parsed zarr.json, or attributes) in canonical JSON."""
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def identity(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """The digest of a group's identity attributes (those of ``keys`` it has)."""
    return metadata_sha256({k: attrs[k] for k in keys if k in attrs})


def parse(data: bytes | None) -> Any:
    """A raw zarr.json: its dict, :data:`GONE` (None given), or :data:`INVALID`."""
    if data is None:
        return GONE
    if len(data) > MAX_ATTRIBUTE_BYTES:
        return {"_too_large": len(data)}
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return INVALID


def _attrs(meta: Any) -> dict:
    attrs = meta.get("attributes", {}) if isinstance(meta, dict) else {}
    return attrs if isinstance(attrs, dict) else {}


def node_problems(meta: Any, kind: str, *, legacy: bool = False) -> list[str]:
    """Why one node's metadata cannot be trusted (empty when it can). ``kind``: 'root',
    'dataset', 'backbone' or 'array'."""
    if meta is INVALID:
        return ["its zarr.json is not valid JSON (empty or cut short)"]
    if isinstance(meta, dict) and "_too_large" in meta:
        return [
            f"its zarr.json is {meta['_too_large']:,} bytes, over the "
            f"{MAX_ATTRIBUTE_BYTES:,} accepted (metadata size limit)"
        ]
    out = list(metadata_problems(meta, legacy=legacy))
    if out:
        return out
    if kind == "group" and meta.get("node_type") == "group":
        return ["a group nested below a backbone: the layout has none (dataset/backbone/array)"]
    want = "array" if kind == "array" else "group"
    if meta.get("node_type") != want:
        return [f"node_type {meta.get('node_type')!r}, expected {want!r}"]
    if not isinstance(meta.get("attributes", {}), dict):
        return [f"attributes {type(meta['attributes']).__name__}, expected an object"]
    attrs = _attrs(meta)
    if kind == "root":
        fmt = attrs.get("embedstore_format")
        if fmt is not None and (not isinstance(fmt, int) or isinstance(fmt, bool)):
            out.append(f"embedstore_format {fmt!r} is not an integer")
    elif kind == "dataset":
        out += _dataset_attr_problems(attrs)
    elif kind == "backbone":
        if "complete" in attrs and not isinstance(attrs["complete"], bool):
            out.append(f"complete {attrs['complete']!r} is not true or false")
        if not isinstance(attrs.get("provenance", {}), dict):
            out.append(f"provenance {attrs['provenance']!r} is not an object")
    return out


def _dataset_attr_problems(attrs: dict) -> list[str]:
    if "n_samples" not in attrs:
        return []  # not a dataset yet (an interrupted write): nothing is read from it
    out = []
    n = attrs.get("n_samples")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        out.append(f"n_samples {n!r} is not a non-negative integer")
    names = attrs.get("class_names")
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        out.append(f"class_names {str(names)[:60]!r} is not a list of strings")
    elif len(names) > MAX_CLASSES:
        out.append(f"{len(names):,} class names, over the {MAX_CLASSES:,} accepted")
    if attrs.get("task") not in TASK_KINDS:
        out.append(f"task {str(attrs.get('task'))[:40]!r} is not one of {', '.join(TASK_KINDS)}")
    if not isinstance(attrs.get("checksums", {}), dict):
        out.append("checksums is not an object")
    return out


def _recorded(attrs: dict, name: str, meta: Any) -> str | None:
    record = attrs.get(RECORD)
    if not isinstance(record, dict) or name not in record or meta is GONE:
        return None
    if record[name] != metadata_sha256(meta):
        return f"its '{name}' metadata (zarr.json) differs from the digest recorded when written"
    return None


def dataset_audit(get: Getter, ds: str, *, legacy: bool = False) -> list[str]:
    """Problems of a dataset's own metadata and its data arrays' (not its backbones')."""
    meta = get(ds)
    problems = node_problems(meta, "dataset", legacy=legacy)
    if problems:
        return problems
    attrs = _attrs(meta)
    record = attrs.get(RECORD)
    if isinstance(record, dict) and record.get("attributes") != identity(attrs, DATASET_KEYS):
        problems.append(
            "its attributes (task, class names or their order, n_samples) differ from the "
            "digest recorded when it was written"
        )
    metas: dict[str, Any] = {ds: meta}
    stored: dict[str, int] = {}
    for name in DATA_ARRAYS:
        m = get(f"{ds}/{name}")
        if m is GONE:
            continue
        problems += [f"'{name}': {p}" for p in node_problems(m, "array", legacy=legacy)]
        if (msg := _recorded(attrs, name, m)) is not None:
            problems.append(msg)
        metas[f"{ds}/{name}"] = m
        stored[f"{ds}/{name}"] = 1 << 62  # chunk counts are verify's (it lists them)
    if not problems:
        problems += [f"'{p.rsplit('/', 1)[-1]}': {w}" for p, w in shape_problems(metas, stored)]
    return problems


def backbone_audit(get: Getter, ds: str, bb: str, *, legacy: bool = False) -> list[str]:
    """Problems of a backbone group's metadata and its arrays' (call after the dataset's)."""
    meta = get(f"{ds}/{bb}")
    problems = node_problems(meta, "backbone", legacy=legacy)
    if problems:
        return problems
    attrs = _attrs(meta)
    record = attrs.get(RECORD)
    if isinstance(record, dict) and record.get("attributes") != identity(attrs, BACKBONE_KEYS):
        problems.append(
            "its attributes (complete, provenance) differ from the digest recorded when it was "
            "completed"
        )
    metas: dict[str, Any] = {ds: get(ds), f"{ds}/{bb}": meta}
    for name in BACKBONE_ARRAYS:
        m = get(f"{ds}/{bb}/{name}")
        if m is GONE:  # an array gone is reported by the layout checks (reads and verify)
            continue
        problems += [f"'{name}': {p}" for p in node_problems(m, "array", legacy=legacy)]
        if (msg := _recorded(attrs, name, m)) is not None:
            problems.append(msg)
        metas[f"{ds}/{bb}/{name}"] = m
    if not problems:
        problems += [f"'{p.rsplit('/', 1)[-1]}': {w}" for p, w in shape_problems(metas, {})]
    return problems

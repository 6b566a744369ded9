"""Damaged metadata of every node kind of a store: not JSON, empty, and fields of the wrong type.

Shared by tests/faults/test_faults_cli.py (every command walked against each) and
benchmarks/bench_faults.py (the table of bad inputs)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

NODES = {
    "root": "",
    "dataset": "toy",
    "ids": "toy/ids",
    "labels": "toy/labels",
    "split": "toy/split",
    "backbone": "toy/bb",
    "embeddings": "toy/bb/embeddings",
    "progress": "toy/bb/progress",
    "checksums": "toy/bb/checksums",
    "chunk_nbytes": "toy/bb/chunk_nbytes",
    "missing": "toy/bb/missing",
    "missing_reason": "toy/bb/missing_reason",
}
_ARRAY_EDITS: dict[str, Callable[[dict], None]] = {
    "shape 'many'": lambda m: m.update(shape="many"),
    "data_type 5": lambda m: m.update(data_type=5),
    "chunk_grid 'x'": lambda m: m.update(chunk_grid="x"),
    "attributes []": lambda m: m.update(attributes=[]),
}


def _attr(key: str, value: object) -> Callable[[dict], None]:
    return lambda m: m.setdefault("attributes", {}).__setitem__(key, value)


_GROUP_EDITS: dict[str, dict[str, Callable[[dict], None]]] = {
    "root": {
        "embedstore_format 'two'": _attr("embedstore_format", "two"),
        "node_type 'array'": lambda m: m.update(node_type="array"),
    },
    "dataset": {
        "n_samples 'many'": _attr("n_samples", "many"),
        "class_names 7": _attr("class_names", 7),
        "task ['x']": _attr("task", ["x"]),
        "attributes []": lambda m: m.update(attributes=[]),
    },
    "backbone": {
        "complete 'yes'": _attr("complete", "yes"),
        "provenance 'x'": _attr("provenance", "x"),
        "attributes []": lambda m: m.update(attributes=[]),
    },
}


def damages(backbone: str = "bb") -> list[tuple[str, str, Callable[[Path], None]]]:
    """(node kind, damage, apply(store)) for every node kind and damage (the backbone's nodes
    under ``toy/<backbone>``)."""
    out = []
    for kind, node in NODES.items():
        node = node.replace("toy/bb", f"toy/{backbone}")
        meta = f"{node}/zarr.json".lstrip("/")

        def write(data: bytes, meta: str = meta) -> Callable[[Path], None]:
            def apply(store: Path) -> None:
                (store / meta).write_bytes(data)

            return apply

        out.append((kind, "not JSON", write(b'{"zarr_format": 3, "node_')))
        out.append((kind, "empty", write(b"")))
        edits = _GROUP_EDITS.get(kind, _ARRAY_EDITS)
        for name, edit in edits.items():

            def apply(store: Path, meta: str = meta, edit=edit) -> None:
                data = json.loads((store / meta).read_bytes())
                edit(data)
                (store / meta).write_text(json.dumps(data))

            out.append((kind, name, apply))
    return out


def damaged_copy(good: Path, dest: Path, apply: Callable[[Path], None]) -> Path:
    shutil.copytree(good, dest)
    apply(dest)
    return dest

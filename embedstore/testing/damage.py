"""Damage made to a store, shared by tests/faults and benchmarks/bench_faults.py.

Damaged metadata of every node kind (:func:`damages`: not JSON, empty, fields of the wrong type;
every command is walked against each), and the catalog of damage to a plain local store made by
:func:`make_store`: :data:`DAMAGES` (each named by ``verify`` and refused by ``probe``),
:data:`SILENT` (what a read would get wrong if nothing checked it) and :data:`OVERSIZED` (nesting and
metadata size limits)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from embedstore import create_store
from embedstore.testing.toy import make_dataset

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


# The store damages catalog: damage made to a plain local store, one kind at a time.


def make_store(path: Path) -> Path:
    """60 rows, 3 classes, backbone 'bb' complete (4 chunks of 16 rows), 'partial' half done."""
    store = create_store(path)
    make_dataset(store, n=60, classes=("x", "y", "z"))
    X = np.random.default_rng(0).normal(size=(60, 32)).astype(np.float32)
    w = store.writer("toy", "bb", dim=32, dtype="float32", chunk_rows=16)
    for i in range(0, 60, 10):
        w.write(X[i : i + 10])
    if not w.finish({"name": "bb"}):
        raise RuntimeError("the complete array of make_store did not finish")
    p = store.writer("toy", "partial", dim=32, dtype="float32", chunk_rows=16)
    p.write(X[:32])  # two of four chunks
    return path


def _flip(path: Path) -> None:
    """One bit flipped in the middle of a file."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _set_complete(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["attributes"]["complete"] = True
    path.write_text(json.dumps(meta))


def _labels_out_of_range(store: Path) -> None:
    """A label of 9 in a dataset of 3 classes (made through zarr, as no API writes it)."""
    labels = zarr.open_array(store / "toy" / "labels", mode="r+")
    labels[7] = 9


# (name, damage applied to the path under the store, that path, the array verify must name and
# what it must say of it)
DAMAGES: list[tuple[str, Callable[[Path], None], str, str, str]] = [
    ("flipped byte in a chunk", _flip, "toy/bb/embeddings/c/1/0", "toy/bb/embeddings", "chunk 1 (rows 16-31"),
    ("truncated chunk", _truncate, "toy/bb/embeddings/c/2/0", "toy/bb/embeddings", "truncated"),
    ("deleted chunk", Path.unlink, "toy/bb/embeddings/c/0/0", "toy/bb/embeddings", "chunk 0 (rows 0-15, 'toy/bb/embeddings/c/0/0') is missing"),
    ("deleted array zarr.json", Path.unlink, "toy/bb/embeddings/zarr.json", "toy/bb/embeddings", "'embeddings' array is gone"),
    ("complete set on a partial array", _set_complete, "toy/partial/zarr.json", "toy/partial/embeddings", "marked complete, but 2 of 4 chunk(s) were never written"),
    ("labels out of range", _labels_out_of_range, "", "toy/labels", "labels in [0, 9], outside the 3 classes"),
]  # fmt: skip


def _edit(rel: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(store: Path) -> None:
        p = store / rel / "zarr.json"
        meta = json.loads(p.read_text())
        change(meta)
        p.write_text(json.dumps(meta))

    return apply


def _big_endian(meta: dict) -> None:
    for codec in meta["codecs"]:
        if codec["name"] == "bytes":
            codec.setdefault("configuration", {})["endian"] = "big"


def _stray_chunk(store: Path) -> None:
    (store / "toy/bb/embeddings/c/9").mkdir()
    shutil.copy(store / "toy/bb/embeddings/c/0/0", store / "toy/bb/embeddings/c/9/0")


# Damage that a read would get wrong if nothing checked it: verify must name it, and every read
# must either refuse it or return exactly what was written.
SILENT: dict[str, Callable[[Path], None]] = {
    "checksums chunk deleted": lambda s: (s / "toy/bb/checksums/c/1/0").unlink(),
    "stray chunk outside the grid": _stray_chunk,
    "embeddings shape cut to 32 rows": _edit(
        "toy/bb/embeddings", lambda m: m.update(shape=[32, 32])
    ),
    "embeddings data_type int32": _edit("toy/bb/embeddings", lambda m: m.update(data_type="int32")),
    "embeddings bytes big-endian": _edit("toy/bb/embeddings", _big_endian),
    "class_names reordered": _edit(
        "toy", lambda m: m["attributes"].update(class_names=["z", "y", "x"])
    ),
    "task changed": _edit("toy", lambda m: m["attributes"].update(task="ordinal")),
    "n_samples changed": _edit("toy", lambda m: m["attributes"].update(n_samples=59)),
    "complete 'yes' on a partial array": _edit(
        "toy/partial", lambda m: m["attributes"].update(complete="yes")
    ),
    "provenance edited": _edit("toy/bb", lambda m: m["attributes"].update(provenance={})),
    "labels fill_value 1": _edit("toy/labels", lambda m: m.update(fill_value=1)),
    "labels data_type uint8": _edit("toy/labels", lambda m: m.update(data_type="uint8")),
    "split dimension names": _edit("toy/split", lambda m: m.update(dimension_names=["x"])),
}


def _nest(store: Path) -> None:
    folder = store / "toy" / "bb"
    for i in range(300):
        folder = folder / f"g{i}"
        folder.mkdir()
        (folder / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')


def _set_attribute(rel: str, key: str, value: object) -> Callable[[Path], None]:
    return _edit(rel, lambda m: m["attributes"].update({key: value}))


OVERSIZED: dict[str, tuple[Callable[[Path], None], str]] = {
    "300 nested groups": (_nest, "nested below a backbone"),
    "a 17 MiB attribute": (
        _set_attribute("toy/bb", "blob", "x" * (17 * 2**20)),
        "metadata size limit",
    ),
    "100,001 class names": (
        _set_attribute("toy", "class_names", [str(i) for i in range(100_001)]),
        "100,001 class names",
    ),
}

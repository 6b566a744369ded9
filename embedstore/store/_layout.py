"""How each node of the store is laid out: its attributes (parsed once into frozen dataclasses),
how each array is created (core data types, dimension names, codecs), and the migration of
format-1 stores to format 2.

Attributes are read from zarr as untyped JSON; :class:`RootAttrs`, :class:`DatasetAttrs` and
:class:`BackboneAttrs` parse them once, after the node's metadata passed ``_audit.node_problems``
(which refuses wrongly typed ones), so that the rest of the package reads typed fields.

Every array carries Zarr v3 ``dimension_names``, so that ``xarray.open_datatree(store,
engine="zarr")`` aligns the arrays of a dataset and of each of its backbones along ``sample``:

=================  ===========================  ==============================
array              dimension names              data type
=================  ===========================  ==============================
ids                (sample, id_utf8)            uint8, UTF-8 zero-padded
group              (sample, group_utf8)         uint8, UTF-8 zero-padded
labels             (sample,) | (sample, class)  int64 | uint8 (multilabel)
split              (sample,)                    uint8
embeddings         (sample, feature)            float16 | float32
progress           (chunk,)                     uint8
checksums          (chunk, sha256_byte)         uint8
chunk_nbytes       (chunk,)                     uint64
missing            (sample,)                    bool
missing_reason     (sample, reason_utf8)        uint8, UTF-8 zero-padded
=================  ===========================  ==============================

Chunks are compressed with zstd with its frame checksum on, so that a flipped byte in a chunk
fails loudly when it is read instead of decoding to wrong numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from embedstore.store._access import array, v3_metadata, values
from embedstore.store._integrity import record_dataset_checksums
from embedstore.store._strings import (
    REASON_BYTES,
    TEXT_ENCODING,
    encode_text,
    is_legacy_text,
    read_text,
)
from embedstore.store._validate import DATA_ARRAYS

FORMAT_VERSION = 2
TEXT_ARRAYS = {"ids": "id_utf8", "group": "group_utf8", "missing_reason": "reason_utf8"}
_DIMS: dict[str, tuple[str, ...]] = {
    "split": ("sample",),
    "embeddings": ("sample", "feature"),
    "progress": ("chunk",),
    "checksums": ("chunk", "sha256_byte"),
    "chunk_nbytes": ("chunk",),
    "missing": ("sample",),
}


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class RootAttrs:
    """The store root's attributes."""

    embedstore_format: int | None  # None: absent or not an integer (not an embedstore store)
    created_by: str | None = None

    @classmethod
    def parse(cls, attrs: Mapping[str, Any]) -> RootAttrs:
        fmt = attrs.get("embedstore_format")
        created = attrs.get("created_by")
        return cls(
            embedstore_format=fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else None,
            created_by=None if created is None else str(created),
        )

    @classmethod
    def of(cls, group: zarr.Group) -> RootAttrs:
        return cls.parse(group.attrs.asdict())


@dataclass(frozen=True)
class DatasetAttrs:
    """A dataset group's attributes (``n_samples`` is None: not a dataset yet, an interrupted
    write)."""

    task: str
    class_names: tuple[str, ...]
    n_samples: int | None
    source: str = ""
    checksums: dict[str, str] = field(default_factory=dict)  # data array -> sha256-chunks-v1
    pending_ids: str | None = None  # digest of the ids an interrupted overwrite replaced

    @classmethod
    def parse(cls, attrs: Mapping[str, Any]) -> DatasetAttrs:
        n = attrs.get("n_samples")
        names = attrs.get("class_names")
        pending = attrs.get("pending_ids")
        return cls(
            task=str(attrs.get("task", "")),
            class_names=tuple(map(str, names)) if isinstance(names, list | tuple) else (),
            n_samples=int(n) if n is not None else None,
            source=str(attrs.get("source", "")),
            checksums={str(k): str(v) for k, v in _object(attrs.get("checksums")).items()},
            pending_ids=None if pending is None else str(pending),
        )

    @classmethod
    def of(cls, group: zarr.Group) -> DatasetAttrs:
        return cls.parse(group.attrs.asdict())

    @property
    def n(self) -> int:
        """``n_samples`` of a dataset (a group that is not one yet raises)."""
        if self.n_samples is None:
            raise KeyError("n_samples")
        return self.n_samples


@dataclass(frozen=True)
class BackboneAttrs:
    """A backbone group's attributes (``complete`` is None: not marked, its creation was
    interrupted)."""

    complete: bool | None
    provenance: dict[str, Any] = field(default_factory=dict)
    numerics: dict[str, Any] | None = None  # recorded when the array was created

    @classmethod
    def parse(cls, attrs: Mapping[str, Any]) -> BackboneAttrs:
        complete = attrs.get("complete")
        numerics = attrs.get("numerics")
        return cls(
            complete=None if complete is None else bool(complete),
            provenance=_object(attrs.get("provenance")),
            numerics=dict(numerics) if isinstance(numerics, Mapping) else None,
        )

    @classmethod
    def of(cls, group: zarr.Group) -> BackboneAttrs:
        return cls.parse(group.attrs.asdict())


def compressor() -> ZstdCodec:
    return ZstdCodec(level=0, checksum=True)


def dimension_names(name: str, ndim: int) -> tuple[str, ...]:
    """The dimension names of an array of the layout, by its name and rank."""
    if name in TEXT_ARRAYS:
        return ("sample", TEXT_ARRAYS[name])
    if name == "labels":
        return ("sample",) if ndim == 1 else ("sample", "class")
    return _DIMS.get(name, ("sample",) + tuple(f"dim_{i}" for i in range(1, ndim)))


def create_data_array(group: zarr.Group, name: str, value: np.ndarray) -> zarr.Array:
    """Create and fill ids / labels / split / group (text encoded to uint8 first)."""
    if name in TEXT_ARRAYS:
        value = encode_text(value.tolist(), name)
    arr = group.create_array(
        name,
        shape=value.shape,
        dtype=value.dtype,
        compressors=compressor(),
        dimension_names=dimension_names(name, value.ndim),
        fill_value=0,
    )
    arr[...] = value
    if name in TEXT_ARRAYS:
        arr.attrs["encoding"] = TEXT_ENCODING
    return arr


def create_backbone_arrays(
    group: zarr.Group, n_rows: int, dim: int, dtype: str, chunk_rows: int
) -> None:
    """The embeddings array and its per-chunk bookkeeping, in a new backbone group."""
    n_chunks = -(-n_rows // chunk_rows)
    group.create_array(
        "embeddings",
        shape=(n_rows, dim),
        chunks=(chunk_rows, dim),
        dtype=dtype,
        fill_value=0.0,
        compressors=compressor(),
        dimension_names=_DIMS["embeddings"],
    )
    group.create_array(
        "progress", shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0,
        dimension_names=_DIMS["progress"],
    )  # fmt: skip
    sums = group.create_array(
        "checksums", shape=(n_chunks, 32), chunks=(1, 32), dtype="uint8", fill_value=0,
        dimension_names=_DIMS["checksums"],
    )  # fmt: skip
    sums.attrs["description"] = (
        "row i: sha256 of the stored (compressed) bytes of embeddings chunk i, written with it; "
        "all zeros: not recorded"
    )
    group.create_array(
        "chunk_nbytes", shape=(n_chunks,), chunks=(1,), dtype="uint64", fill_value=0,
        dimension_names=_DIMS["chunk_nbytes"],
    ).attrs["description"] = "row i: size in bytes of embeddings chunk i as stored"  # fmt: skip
    group.create_array(
        "missing", shape=(n_rows,), chunks=(chunk_rows,), dtype="bool", fill_value=False,
        compressors=compressor(), dimension_names=_DIMS["missing"],
    )  # fmt: skip
    reason = group.create_array(
        "missing_reason", shape=(n_rows, REASON_BYTES), chunks=(chunk_rows, REASON_BYTES),
        dtype="uint8", fill_value=0, compressors=compressor(),
        dimension_names=dimension_names("missing_reason", 2),
    )  # fmt: skip
    reason.attrs["encoding"] = TEXT_ENCODING


# ----------------------------------------------------------------- format 1 -> 2


def needs_migration(root: zarr.Group) -> bool:
    version = RootAttrs.of(root).embedstore_format
    return (FORMAT_VERSION if version is None else version) < FORMAT_VERSION


def migrate(root: zarr.Group) -> list[str]:
    """Rewrite a format-1 store as format 2, in place; returns the arrays rewritten.

    Text arrays stored with the ``string`` extension type are re-encoded as uint8 UTF-8; every
    array gets its dimension names (a metadata-only change). Embeddings chunks are not touched,
    so their bytes (and archive checksums of them) stay the same. Arrays written by format 1 have
    no per-chunk checksums: ``embedstore verify`` says so, and re-extracting adds them.
    """
    changed = []
    for ds_name, ds in root.groups():
        names = list(ds.array_keys())
        for name in names:
            if _migrate_array(ds, name):
                changed.append(f"{ds_name}/{name}")
        if "checksums" not in ds.attrs:
            record_dataset_checksums(ds, [n for n in names if n in DATA_ARRAYS])
        for bb_name, bb in ds.groups():
            for name in list(bb.array_keys()):
                if _migrate_array(bb, name):
                    changed.append(f"{ds_name}/{bb_name}/{name}")
    root.attrs["embedstore_format"] = FORMAT_VERSION
    return changed


def migrate_folder(location: str | os.PathLike[str]) -> list[str]:
    """Rewrite any format-1 text arrays of a local store to format 2 (used after an import of a
    format-1 archive into a format-2 store); returns the arrays rewritten."""
    return migrate(zarr.open_group(str(location), mode="r+"))


def _migrate_array(group: zarr.Group, name: str) -> bool:
    arr = array(group, name)
    if name in TEXT_ARRAYS and is_legacy_text(arr.dtype):
        texts = read_text(values(arr, ...))
        chunk_rows = int(arr.chunks[0])
        del group[name]
        width = REASON_BYTES if name == "missing_reason" else None
        encoded = encode_text(texts.tolist(), name, width=width)
        new = group.create_array(
            name, shape=encoded.shape, chunks=(chunk_rows, encoded.shape[1]), dtype="uint8",
            fill_value=0, compressors=compressor(), dimension_names=dimension_names(name, 2),
        )  # fmt: skip
        if name != "missing_reason" or encoded.any():
            new[...] = encoded
        new.attrs["encoding"] = TEXT_ENCODING
        return True
    meta = v3_metadata(arr)
    if meta is not None and meta.dimension_names is None:
        _set_dimension_names(group, name, dimension_names(name, arr.ndim))
        return True
    return False


def _set_dimension_names(group: zarr.Group, name: str, dims: tuple[str, ...]) -> None:
    """Add dimension names to an array's zarr.json (metadata only; chunks are untouched)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    store, key = group.store, f"{group.path}/{name}/zarr.json".lstrip("/")
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    if buf is None:  # listed a moment ago, gone since
        raise FileNotFoundError(f"'{key}' is gone: no array metadata to name its dimensions")
    meta: dict[str, Any] = json.loads(buf.to_bytes())
    meta["dimension_names"] = list(dims)
    data = json.dumps(meta, indent=2).encode()
    sync(store.set(key, default_buffer_prototype().buffer.from_bytes(data)))

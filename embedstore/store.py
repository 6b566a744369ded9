"""The embedding store: a Zarr v3 group holding datasets and, per dataset, one array per backbone.

Layout (documented for zarr-python users in the README)::

    <store>.zarr/                 attrs: embedstore_format, created_by
      <dataset>/                  attrs: task, class_names, source, n_samples, split_codes
        ids      (N,) str         unique sample ids
        labels   (N,) int64 | (N, C) uint8 for multilabel
        split    (N,) uint8       0 train, 1 val, 2 test
        group    (N,) str         optional patient / group ids
        <backbone>/               attrs: complete, rows_written, provenance, missing
          embeddings (N, D) float16 | float32, chunked by rows, zstd-compressed
          missing    (N,) bool    optional: rows whose image could not be read

Rows are aligned by sample across every backbone of a dataset. Only this module imports zarr.
"""

from __future__ import annotations

import difflib
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from embedstore._version import __version__
from embedstore.errors import (
    ArrayNotFoundError,
    ConflictError,
    DatasetNotFoundError,
    FormatVersionError,
    IncompleteArrayError,
    InvalidDataError,
    ReadOnlyError,
    StoreExistsError,
    StoreNotFoundError,
)

__all__ = [
    "FORMAT_VERSION",
    "SPLIT_CODES",
    "TASK_KINDS",
    "ArrayInfo",
    "DatasetInfo",
    "EmbeddingWriter",
    "Store",
    "create_store",
    "open_store",
]

FORMAT_VERSION = 1
SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
TASK_KINDS = ("binary", "multiclass", "multilabel", "ordinal")
EMBEDDING_DTYPES = ("float16", "float32")
_TARGET_CHUNK_BYTES = 4 * 2**20
_DATA_ARRAYS = ("ids", "labels", "split", "group")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds: task, classes, sample and split counts, and its backbones."""

    name: str
    task: str
    class_names: tuple[str, ...]
    n_samples: int
    split_counts: dict[str, int]
    has_group: bool
    source: str
    backbones: tuple[str, ...]


@dataclass(frozen=True)
class ArrayInfo:
    """One backbone's embeddings for one dataset: shape, storage, completeness and provenance."""

    dataset: str
    backbone: str
    shape: tuple[int, int]
    dtype: str
    chunk_rows: int
    nbytes_stored: int
    complete: bool
    rows_written: int
    n_missing: int
    provenance: dict[str, Any] = field(default_factory=dict)


def _is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


_REMOTE_SCHEMES = ("http", "https", "s3")


def _remote_storage_options(
    location: str, storage_options: dict[str, Any] | None
) -> dict[str, Any]:
    """fsspec options for a URL: the caller's, plus an S3 endpoint from the environment.

    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (the AWS CLI's variables) point ``s3://`` at an
    S3-compatible server (MinIO, moto, Ceph) when ``storage_options`` names no endpoint.
    """
    opts = dict(storage_options or {})
    if location.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        client_kwargs = dict(opts.get("client_kwargs") or {})
        if endpoint and "endpoint_url" not in opts and "endpoint_url" not in client_kwargs:
            client_kwargs["endpoint_url"] = endpoint
            opts["client_kwargs"] = client_kwargs
    return opts


def _open_remote_root(
    location: str, mode: str, storage_options: dict[str, Any] | None
) -> zarr.Group:
    """Open the root group of a store at an fsspec URL (https://, http://, s3://), read-only."""
    scheme = location.split("://", 1)[0].lower()
    if scheme not in _REMOTE_SCHEMES:
        raise StoreNotFoundError(
            f"cannot read '{location}': URL scheme '{scheme}' is not supported; "
            f"use one of {', '.join(s + '://' for s in _REMOTE_SCHEMES)}, or a local path"
        )
    if mode != "r":
        raise ReadOnlyError(
            f"remote store '{location}' can only be opened read-only (mode='r'); "
            "import it into a local store with `embedstore import URL STORE` to modify it"
        )
    opts = _remote_storage_options(location, storage_options)
    try:
        from zarr.storage import FsspecStore

        fs_store = FsspecStore.from_url(location.rstrip("/"), storage_options=opts, read_only=True)
    except ImportError as exc:
        raise StoreNotFoundError(
            f"reading '{location}' needs fsspec and its {scheme} backend ({exc.name or exc}); "
            "install them with `pip install 'embedstore[remote]'`"
        ) from None
    try:
        return zarr.open_group(fs_store, mode="r", zarr_format=3)
    except FileNotFoundError:
        raise StoreNotFoundError(
            f"no Zarr v3 store at '{location}' (no zarr.json there); check the URL, "
            "and that the store folder itself (the one holding zarr.json) was uploaded"
        ) from None
    except Exception as exc:  # network and permission errors come in many types
        raise StoreNotFoundError(
            f"could not read the store at '{location}': {type(exc).__name__}: {exc}; "
            "check the URL, the network, and credentials or endpoint (storage_options, "
            "AWS_ENDPOINT_URL)"
        ) from None


def _open_zip_root(path: Path, mode: str) -> zarr.Group:
    """Open the root group of an archive (a Zarr zip store), read-only."""
    if not zipfile.is_zipfile(path):
        raise StoreNotFoundError(
            f"'{path}' is a file but not a zip archive; pass a store folder (.zarr) or an "
            "archive made by `embedstore export`"
        )
    if mode != "r":
        raise ReadOnlyError(
            f"archive '{path}' can only be opened read-only (mode='r'); import it into a "
            "local store with `embedstore import ARCHIVE STORE` to modify it"
        )
    from zarr.storage import ZipStore

    try:
        return zarr.open_group(ZipStore(path, mode="r"), mode="r", zarr_format=3)
    except FileNotFoundError:
        raise StoreNotFoundError(
            f"'{path}' is a zip file but not a Zarr store (no zarr.json member at its root); "
            "pass an archive made by `embedstore export`"
        ) from None


def _open_root(
    location: str | os.PathLike[str],
    mode: str,
    storage_options: dict[str, Any] | None = None,
) -> zarr.Group:
    """Open the root group of a store folder, an archive file, or a remote URL.

    Archives and URLs open read-only and only as Zarr v3 (whose codecs never unpickle).
    """
    location = str(location)
    if location.startswith("file://"):
        location = location[len("file://") :]
    if _is_remote(location):
        return _open_remote_root(location, mode, storage_options)
    path = Path(location)
    if path.is_file():
        return _open_zip_root(path, mode)
    if not (path / "zarr.json").is_file():
        if path.exists():
            raise StoreNotFoundError(
                f"'{path}' exists but is not a Zarr v3 store (no zarr.json); "
                "pass the path of a store made by embedstore"
            )
        raise StoreNotFoundError(
            f"no store at '{path}'; check the path, or create one with `embedstore extract`"
        )
    return zarr.open_group(str(path), mode=mode)


class Store:
    """An embedstore store. Make one with :func:`create_store` or :func:`open_store`."""

    def __init__(self, root: zarr.Group, location: str, *, read_only: bool) -> None:
        self._root = root
        self.location = location
        self.read_only = read_only
        version = root.attrs.get("embedstore_format")
        if version is None:
            raise StoreNotFoundError(
                f"'{location}' is a Zarr group but not an embedstore store "
                "(no 'embedstore_format' attribute at its root)"
            )
        if int(version) > FORMAT_VERSION:
            raise FormatVersionError(
                f"store '{location}' has format version {version}, newer than this embedstore "
                f"understands ({FORMAT_VERSION}, embedstore {__version__}); "
                f"it was written by {root.attrs.get('created_by', 'a newer embedstore')}; "
                "upgrade embedstore to read it"
            )
        self.format_version = int(version)
        self.created_by = str(root.attrs.get("created_by", "unknown"))

    def __repr__(self) -> str:
        mode = "r" if self.read_only else "r+"
        return f"Store({self.location!r}, mode={mode!r})"

    # ----------------------------------------------------------------- datasets

    def datasets(self) -> list[str]:
        """Names of the datasets in the store, sorted."""
        return sorted(self._root.group_keys())

    def _dataset_group(self, name: str) -> zarr.Group:
        if name not in self.datasets():
            known = ", ".join(self.datasets()) or "none"
            raise DatasetNotFoundError(
                f"dataset '{name}' is not in store '{self.location}' (datasets: {known}); "
                "see `embedstore ls STORE`"
            )
        return self._root[name]

    def dataset_info(self, name: str) -> DatasetInfo:
        """Summary of one dataset."""
        g = self._dataset_group(name)
        attrs = g.attrs.asdict()
        split = g["split"][:]
        counts = {s: int((split == code).sum()) for s, code in SPLIT_CODES.items()}
        return DatasetInfo(
            name=name,
            task=attrs["task"],
            class_names=tuple(attrs["class_names"]),
            n_samples=int(attrs["n_samples"]),
            split_counts=counts,
            has_group="group" in g.array_keys(),
            source=attrs.get("source", ""),
            backbones=tuple(self.backbones(name)),
        )

    def add_dataset(
        self,
        name: str,
        *,
        ids: Sequence[str] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        split: Sequence[int] | Sequence[str] | np.ndarray,
        task: str,
        class_names: Sequence[str],
        group: Sequence[str] | np.ndarray | None = None,
        source: str = "",
        overwrite: bool = False,
    ) -> DatasetInfo:
        """Write a dataset's ids, labels and splits once.

        Writing the same content again is a no-op; different content raises
        :class:`ConflictError` unless ``overwrite``. Overwriting keeps the backbones only when the
        ids are unchanged (rows must stay aligned); otherwise delete the dataset first.

        Args:
            ids: array of shape (n_samples,), unique non-empty strings.
            labels: (n_samples,) class indices, or (n_samples, n_classes) 0/1 for multilabel.
            split: (n_samples,) codes 0/1/2 or names 'train'/'val'/'test'.
            task: one of binary, multiclass, multilabel, ordinal.
            class_names: one name per class (per label for multilabel).
            group: optional (n_samples,) patient / group ids.
        """
        self._check_writable()
        _check_name(name, "dataset")
        data = _validate_dataset(ids, labels, split, task, class_names, group)
        attrs = {
            "task": task,
            "class_names": list(map(str, class_names)),
            "source": source,
            "n_samples": int(len(data["ids"])),
            "split_codes": SPLIT_CODES,
        }
        if name in self.datasets():
            g = self._root[name]
            if self._same_dataset(g, data, attrs):
                return self.dataset_info(name)
            if not overwrite:
                raise ConflictError(
                    f"dataset '{name}' already exists in '{self.location}' with different ids, "
                    "labels, splits or classes; nothing was changed. Pass overwrite=True "
                    "(--overwrite) to replace them, or use another dataset name"
                )
            old_ids = _as_str(g["ids"][:])
            if self.backbones(name) and not np.array_equal(old_ids, data["ids"]):
                raise ConflictError(
                    f"dataset '{name}' has embeddings for {len(self.backbones(name))} backbone(s) "
                    "aligned to its current ids; new ids would misalign them. "
                    "Delete the dataset first (Store.delete_dataset) to replace its samples"
                )
            for key in _DATA_ARRAYS:
                if key in g.array_keys():
                    del g[key]
        else:
            g = self._root.create_group(name)
        for key, value in data.items():
            if value is None:
                continue
            g.create_array(key, shape=value.shape, dtype=_zarr_dtype(value))[...] = value
        g.attrs.update(attrs)
        return self.dataset_info(name)

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset and every backbone array under it."""
        self._check_writable()
        self._dataset_group(name)
        del self._root[name]

    @staticmethod
    def _same_dataset(g: zarr.Group, data: dict[str, np.ndarray | None], attrs: dict) -> bool:
        old = g.attrs.asdict()
        if any(old.get(k) != attrs[k] for k in ("task", "class_names", "n_samples")):
            return False
        for key, value in data.items():
            present = key in g.array_keys()
            if value is None or not present:
                if (value is None) != (not present):
                    return False
                continue
            stored = g[key][:]
            if value.dtype.kind in "OUT":
                stored = _as_str(stored)
            if stored.shape != value.shape or not np.array_equal(stored, value):
                return False
        return True

    def ids(self, dataset: str) -> np.ndarray:
        """Sample ids, array of shape (n_samples,) of str."""
        return _as_str(self._dataset_group(dataset)["ids"][:])

    def labels(self, dataset: str) -> np.ndarray:
        """Labels: (n_samples,) int64, or (n_samples, n_classes) uint8 for multilabel."""
        return self._dataset_group(dataset)["labels"][:]

    def split(self, dataset: str) -> np.ndarray:
        """Split codes, (n_samples,) uint8: 0 train, 1 val, 2 test."""
        return self._dataset_group(dataset)["split"][:]

    def group(self, dataset: str) -> np.ndarray | None:
        """Group (patient) ids, (n_samples,) str, or None when the dataset has none."""
        g = self._dataset_group(dataset)
        return _as_str(g["group"][:]) if "group" in g.array_keys() else None

    def split_rows(self, dataset: str, split: str) -> np.ndarray:
        """Row indices of one split ('train', 'val' or 'test'), sorted."""
        return np.flatnonzero(self.split(dataset) == _split_code(split))

    # ----------------------------------------------------------------- embeddings

    def backbones(self, dataset: str) -> list[str]:
        """Backbones with an embeddings array (complete or not) for a dataset, sorted."""
        g = self._dataset_group(dataset)
        return sorted(k for k in g.group_keys())

    def _backbone_group(self, dataset: str, backbone: str) -> zarr.Group:
        extracted = self.backbones(dataset)
        if backbone not in extracted:
            close = difflib.get_close_matches(backbone, extracted, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ArrayNotFoundError(
                f"backbone '{backbone}' has not been extracted for dataset '{dataset}'; {hint}"
                f"(extracted: {', '.join(extracted) or 'none'}); run `embedstore extract STORE "
                f"--dataset {dataset} --backbone {backbone} ...`"
            )
        return self._root[dataset][backbone]

    def array_info(self, dataset: str, backbone: str) -> ArrayInfo:
        """Shape, dtype, bytes on disk, completeness and provenance of one embeddings array."""
        bg = self._backbone_group(dataset, backbone)
        arr = bg["embeddings"]
        attrs = bg.attrs.asdict()
        nbytes = arr.nbytes_stored()
        if "missing" in bg.array_keys():
            nbytes += bg["missing"].nbytes_stored()
        return ArrayInfo(
            dataset=dataset,
            backbone=backbone,
            shape=(int(arr.shape[0]), int(arr.shape[1])),
            dtype=str(arr.dtype).lower().replace("dtype", "").strip("()'\""),
            chunk_rows=int(arr.chunks[0]),
            nbytes_stored=int(nbytes),
            complete=bool(attrs.get("complete", False)),
            rows_written=int(attrs.get("rows_written", 0)),
            n_missing=len(attrs.get("missing", [])),
            provenance=dict(attrs.get("provenance", {})),
        )

    def embeddings(
        self,
        dataset: str,
        backbone: str,
        *,
        rows: np.ndarray | slice | None = None,
        split: str | None = None,
        allow_incomplete: bool = False,
    ) -> np.ndarray:
        """Read embeddings as float32, array of shape (n_rows, dim), without reading other arrays.

        Args:
            rows: row indices (sorted ints) or a slice; default all rows.
            split: read only the rows of this split ('train', 'val', 'test'); exclusive with rows.
            allow_incomplete: read an array that was never marked complete (its unwritten rows
                are zeros).

        Rows recorded as missing (unreadable images) are returned as zeros; use
        :meth:`valid_rows` to exclude them.
        """
        bg = self._backbone_group(dataset, backbone)
        if not allow_incomplete and not bg.attrs.get("complete", False):
            written = bg.attrs.get("rows_written", 0)
            raise IncompleteArrayError(
                f"embeddings of '{backbone}' for '{dataset}' are incomplete ({written} of "
                f"{bg['embeddings'].shape[0]} rows written); rerun the same `embedstore extract` "
                "command to resume it"
            )
        if split is not None:
            if rows is not None:
                raise InvalidDataError("pass rows or split, not both")
            rows = self.split_rows(dataset, split)
        arr = bg["embeddings"]
        if rows is None:
            out = arr[...]
        elif isinstance(rows, slice):
            out = arr[rows]
        else:
            rows = np.asarray(rows, dtype=np.int64)
            out = _read_rows(arr, rows)
        return np.asarray(out, dtype=np.float32)

    def valid_rows(self, dataset: str, backbone: str) -> np.ndarray:
        """Boolean mask (n_samples,): False where the image was missing at extraction."""
        bg = self._backbone_group(dataset, backbone)
        if "missing" in bg.array_keys():
            return ~bg["missing"][:].astype(bool)
        return np.ones(bg["embeddings"].shape[0], dtype=bool)

    def missing(self, dataset: str, backbone: str) -> list[dict[str, Any]]:
        """Rows recorded missing at extraction: dicts with row, id and reason."""
        return list(self._backbone_group(dataset, backbone).attrs.get("missing", []))

    def writer(
        self,
        dataset: str,
        backbone: str,
        *,
        dim: int,
        dtype: str = "float16",
        chunk_rows: int | None = None,
        overwrite: bool = False,
    ) -> EmbeddingWriter:
        """Open a writer for one backbone's embeddings, creating or resuming the array.

        An incomplete array of the same shape and dtype is resumed from its last fully written
        chunk (``writer.rows_written``). A complete array raises :class:`ConflictError` unless
        ``overwrite``, which deletes it first.

        Args:
            dim: embedding width D.
            dtype: 'float16' or 'float32', chosen per array.
            chunk_rows: rows per chunk; default targets ~4 MiB chunks. Resume granularity.
        """
        self._check_writable()
        _check_name(backbone, "backbone")
        if dtype not in EMBEDDING_DTYPES:
            raise InvalidDataError(
                f"embedding dtype must be one of {', '.join(EMBEDDING_DTYPES)}, got '{dtype}'"
            )
        if int(dim) <= 0:
            raise InvalidDataError(f"embedding dim must be positive, got {dim}")
        g = self._dataset_group(dataset)
        n = int(g.attrs["n_samples"])
        if backbone in g.group_keys():
            info = self.array_info(dataset, backbone)
            if overwrite:
                del g[backbone]
            elif info.complete:
                raise ConflictError(
                    f"embeddings of '{backbone}' for '{dataset}' are already complete; "
                    "pass --overwrite to extract them again"
                )
            elif info.shape != (n, dim) or info.dtype != dtype:
                raise ConflictError(
                    f"an incomplete '{backbone}' array for '{dataset}' has shape {info.shape} "
                    f"{info.dtype}, but this run writes ({n}, {dim}) {dtype}; pass --overwrite "
                    "to discard it and start again"
                )
            else:
                return EmbeddingWriter(g[backbone], n_rows=n, dim=dim)
        itemsize = np.dtype(dtype).itemsize
        if chunk_rows is None:
            chunk_rows = max(64, (_TARGET_CHUNK_BYTES // (dim * itemsize)) // 64 * 64)
        chunk_rows = int(min(max(1, chunk_rows), max(1, n)))
        bg = g.create_group(backbone)
        bg.create_array(
            "embeddings", shape=(n, dim), chunks=(chunk_rows, dim), dtype=dtype, fill_value=0.0
        )
        bg.attrs.update({"complete": False, "rows_written": 0, "provenance": {}, "missing": []})
        return EmbeddingWriter(bg, n_rows=n, dim=dim)

    def delete_embeddings(self, dataset: str, backbone: str) -> None:
        """Remove one backbone's embeddings for a dataset."""
        self._check_writable()
        self._backbone_group(dataset, backbone)
        del self._root[dataset][backbone]

    # ----------------------------------------------------------------- internals

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"store '{self.location}' is open read-only; open it with mode='r+' "
                "(archives and remote stores are always read-only: import them first)"
            )

    @property
    def zarr_group(self) -> zarr.Group:
        """The underlying root zarr group (for the archive module)."""
        return self._root


class EmbeddingWriter:
    """Writes one backbone's rows in order, chunk by chunk, so an interrupted run can resume.

    Rows are buffered until a whole chunk is ready; ``rows_written`` (stored in the array's
    attributes after every chunk) is always a chunk boundary, the point a resumed run starts from.
    """

    def __init__(self, group: zarr.Group, *, n_rows: int, dim: int) -> None:
        self._group = group
        self._array = group["embeddings"]
        self.n_rows = n_rows
        self.dim = dim
        self.chunk_rows = int(self._array.chunks[0])
        self.rows_written = int(group.attrs.get("rows_written", 0))
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        # Rows recorded missing beyond the resume point were never written: they are redone.
        self._missing: list[dict[str, Any]] = [
            m for m in group.attrs.get("missing", []) if m["row"] < self.rows_written
        ]

    @property
    def next_row(self) -> int:
        """Index of the next row :meth:`write` expects."""
        return self.rows_written + self._buffered

    def write(self, block: np.ndarray) -> None:
        """Append rows, array of shape (n, dim); NaN or Inf rows are refused and named."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise InvalidDataError(
                f"embedding block must have shape (n, {self.dim}), got {block.shape}"
            )
        start = self.next_row
        if start + len(block) > self.n_rows:
            raise InvalidDataError(
                f"writing {len(block)} rows at row {start} exceeds the dataset's "
                f"{self.n_rows} samples"
            )
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if len(bad):
            shown = ", ".join(str(start + int(i)) for i in bad[:20])
            more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
            raise InvalidDataError(
                f"embeddings contain NaN or Inf in row(s) {shown}{more}; nothing from this block "
                "was written. Check the backbone's weights and the input images"
            )
        self._buffer.append(block.astype(self._array.dtype, copy=False))
        self._buffered += len(block)
        while self._buffered >= self.chunk_rows:
            self._flush(self.chunk_rows)

    def mark_missing(self, row: int, sample_id: str, reason: str) -> None:
        """Record a row whose image could not be read; write zeros for it as usual."""
        self._missing.append({"row": int(row), "id": str(sample_id), "reason": str(reason)})

    def _flush(self, n: int) -> None:
        data = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        head, tail = data[:n], data[n:]
        start = self.rows_written
        self._array[start : start + n] = head
        self._buffer = [tail] if len(tail) else []
        self._buffered = len(tail)
        self.rows_written = start + n
        self._group.attrs.update({"rows_written": self.rows_written, "missing": self._missing})

    def finish(self, provenance: dict[str, Any]) -> None:
        """Write the last partial chunk, check every row is present, and mark the array complete."""
        if self._buffered:
            self._flush(self._buffered)
        if self.rows_written != self.n_rows:
            raise InvalidDataError(
                f"an embeddings array needs exactly one row per sample: {self.n_rows} expected, "
                f"{self.rows_written} written; the array stays incomplete"
            )
        if self._missing:
            mask = np.zeros(self.n_rows, dtype=bool)
            mask[[m["row"] for m in self._missing]] = True
            if "missing" in self._group.array_keys():
                del self._group["missing"]
            self._group.create_array("missing", shape=mask.shape, dtype=bool)[...] = mask
        self._group.attrs.update(
            {"provenance": _jsonable(provenance), "missing": self._missing, "complete": True}
        )


# --------------------------------------------------------------------- module functions


def create_store(location: str | os.PathLike[str]) -> Store:
    """Create a store at a local path, or open the one already there for writing."""
    location = str(location)
    if _is_remote(location):
        raise ReadOnlyError(f"cannot create a store at remote location '{location}'")
    path = Path(location)
    if (path / "zarr.json").is_file():
        return open_store(path, mode="r+")
    if path.exists() and any(path.iterdir()):
        raise StoreExistsError(
            f"'{path}' exists and is not an empty folder or a Zarr store; choose another path"
        )
    root = zarr.open_group(str(path), mode="w")
    root.attrs.update(
        {"embedstore_format": FORMAT_VERSION, "created_by": f"embedstore {__version__}"}
    )
    return Store(root, str(path), read_only=False)


def open_store(
    location: str | os.PathLike[str],
    *,
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
) -> Store:
    """Open an existing store; ``mode`` is 'r' (read-only, the default) or 'r+'.

    ``location`` is a store folder, an archive file made by ``embedstore export`` (a Zarr zip
    store), or a URL (``https://``, ``http://``, ``s3://``; needs ``embedstore[remote]``).
    Archives and URLs are read-only. ``storage_options`` go to fsspec for URLs (credentials,
    ``client_kwargs={"endpoint_url": ...}``); ``AWS_ENDPOINT_URL`` is honoured for ``s3://``.
    """
    if mode not in ("r", "r+"):
        raise InvalidDataError(f"mode must be 'r' or 'r+', got '{mode}'")
    location = str(location)
    root = _open_root(location, mode, storage_options)
    return Store(root, location, read_only=mode == "r")


# --------------------------------------------------------------------- validation helpers


def _check_name(name: str, what: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in _DATA_ARRAYS:
        raise InvalidDataError(
            f"{what} name must be non-empty, without '/', not starting with '.', and not one of "
            f"{', '.join(_DATA_ARRAYS)}; got '{name}'"
        )


def _split_code(split: str) -> int:
    if split not in SPLIT_CODES:
        raise InvalidDataError(f"split must be one of {', '.join(SPLIT_CODES)}, got '{split}'")
    return SPLIT_CODES[split]


def _validate_dataset(ids, labels, split, task, class_names, group) -> dict[str, np.ndarray | None]:
    if task not in TASK_KINDS:
        raise InvalidDataError(f"task must be one of {', '.join(TASK_KINDS)}, got '{task}'")
    ids = _as_str(np.asarray(ids))
    n = len(ids)
    if ids.ndim != 1 or n == 0:
        raise InvalidDataError(
            f"ids must be a non-empty 1-D array of strings, got shape {ids.shape}"
        )
    if (ids == "").any():
        raise InvalidDataError(
            f"ids must be non-empty strings; row(s) {np.flatnonzero(ids == '')[:10].tolist()} are empty"
        )
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != n:
        dups = uniq[counts > 1][:5].tolist()
        raise InvalidDataError(f"ids must be unique; duplicated: {dups}")
    k = len(class_names)
    labels = np.asarray(labels)
    if task == "multilabel":
        if labels.shape != (n, k):
            raise InvalidDataError(
                f"multilabel labels must have shape (n_samples, n_classes) = ({n}, {k}), "
                f"got {labels.shape}"
            )
        if not np.isin(labels, (0, 1)).all():
            raise InvalidDataError("multilabel labels must be 0 or 1")
        labels = labels.astype(np.uint8)
    else:
        if labels.shape != (n,):
            raise InvalidDataError(f"labels must have shape ({n},), got {labels.shape}")
        if labels.dtype.kind not in "iub":
            if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)
            else:
                raise InvalidDataError(
                    f"labels must be integer class indices, got dtype {labels.dtype}"
                )
        labels = labels.astype(np.int64)
        if task == "binary" and k != 2:
            raise InvalidDataError(f"a binary task needs exactly 2 class names, got {k}")
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise InvalidDataError(
                f"labels must be in [0, {k - 1}] for {k} classes, got range "
                f"[{labels.min()}, {labels.max()}]"
            )
    split = np.asarray(split)
    if split.dtype.kind in "OUST":
        bad = sorted(set(_as_str(split).tolist()) - set(SPLIT_CODES))
        if bad:
            raise InvalidDataError(f"split names must be train/val/test, got {bad[:5]}")
        split = np.array([SPLIT_CODES[s] for s in _as_str(split)], dtype=np.uint8)
    if split.shape != (n,):
        raise InvalidDataError(f"split must have shape ({n},), got {split.shape}")
    if not np.isin(split, list(SPLIT_CODES.values())).all():
        raise InvalidDataError("split codes must be 0 (train), 1 (val) or 2 (test)")
    split = split.astype(np.uint8)
    if group is not None:
        group = _as_str(np.asarray(group))
        if group.shape != (n,):
            raise InvalidDataError(f"group must have shape ({n},), got {group.shape}")
    return {"ids": ids, "labels": labels, "split": split, "group": group}


def _as_str(values: np.ndarray) -> np.ndarray:
    """Zarr returns numpy's variable-width StringDType; give callers a plain '<U' array."""
    return np.array(values.tolist(), dtype=str)


def _zarr_dtype(value: np.ndarray) -> Any:
    return str if value.dtype.kind in "OUT" else value.dtype


def _read_rows(arr: zarr.Array, rows: np.ndarray) -> np.ndarray:
    """Read selected rows; reads whole chunks once, which beats per-row selection for dense sets."""
    if len(rows) == 0:
        return np.empty((0, arr.shape[1]), dtype=arr.dtype)
    if len(rows) > 1 and np.any(np.diff(rows) < 0):
        order = np.argsort(rows, kind="stable")
        out = _read_rows(arr, rows[order])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return out[inverse]
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if len(rows) >= 0.25 * (hi - lo):
        return arr[lo:hi][rows - lo]
    return arr.get_orthogonal_selection((rows, slice(None)))


def _jsonable(value: Any) -> Any:
    """Provenance must be JSON: convert numpy scalars, tuples and paths."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value) if math.isfinite(float(value)) else str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

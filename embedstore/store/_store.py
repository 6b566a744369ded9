"""The :class:`Store`: datasets (ids, labels, splits, groups) and reads of embeddings."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    StoreNotFoundError,
)
from embedstore.store._validate import (
    _DATA_ARRAYS,
    EMBEDDING_DTYPES,
    SPLIT_CODES,
    _as_str,
    _check_name,
    _iter_dataset_differences,
    _split_code,
    _validate_dataset,
    _zarr_dtype,
)
from embedstore.store._writer import EmbeddingWriter, create_progress_arrays, rows_done

FORMAT_VERSION = 1
_TARGET_CHUNK_BYTES = 4 * 2**20


def default_chunk_rows(dim: int, dtype: str, multiple_of: int = 64) -> int:
    """Rows per chunk for ~4 MiB chunks, a whole multiple of ``multiple_of`` (e.g. a batch size,
    so that a resumed extraction recomputes exactly the batches of an uninterrupted one)."""
    target = _TARGET_CHUNK_BYTES // (dim * np.dtype(dtype).itemsize)
    return multiple_of * max(1, round(target / multiple_of))


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
        def stored(key: str) -> np.ndarray | None:
            if key not in g.array_keys():
                return None
            value, arr = data[key], g[key][:]
            return _as_str(arr) if value is not None and value.dtype.kind in "OUT" else arr

        differences = _iter_dataset_differences(g.attrs.asdict(), stored, attrs, data.get)
        return next(differences, None) is None
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
        nbytes = sum(bg[k].nbytes_stored() for k in bg.array_keys())
        return ArrayInfo(
            dataset=dataset,
            backbone=backbone,
            shape=(int(arr.shape[0]), int(arr.shape[1])),
            dtype=str(arr.dtype).lower().replace("dtype", "").strip("()'\""),
            chunk_rows=int(arr.chunks[0]),
            nbytes_stored=int(nbytes),
            complete=bool(attrs.get("complete", False)),
            rows_written=int(arr.shape[0]) if attrs.get("complete") else rows_done(bg),
            n_missing=int(bg["missing"][:].sum()),
            provenance=dict(attrs.get("provenance", {})),
        )

    def chunks_done(self, dataset: str, backbone: str) -> np.ndarray:
        """Per chunk of an embeddings array, whether its rows are on disk: (n_chunks,) bool.

        Chunk ``i`` holds rows ``[i * chunk_rows, (i + 1) * chunk_rows)``; see :meth:`array_info`.
        """
        bg = self._backbone_group(dataset, backbone)
        if bg.attrs.get("complete", False):
            return np.ones(bg["progress"].shape[0], dtype=bool)
        return bg["progress"][:].astype(bool)

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
            written = rows_done(bg)
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
        return ~self._backbone_group(dataset, backbone)["missing"][:].astype(bool)

    def missing(self, dataset: str, backbone: str) -> list[dict[str, Any]]:
        """Rows recorded missing at extraction: dicts with row, id and reason."""
        bg = self._backbone_group(dataset, backbone)
        rows = np.flatnonzero(bg["missing"][:])
        if not len(rows):
            return []
        ids = self.ids(dataset)
        reasons = _as_str(bg["missing_reason"][:])
        return [{"row": int(r), "id": str(ids[r]), "reason": str(reasons[r])} for r in rows]

    def writer(
        self,
        dataset: str,
        backbone: str,
        *,
        dim: int,
        dtype: str = "float16",
        chunk_rows: int | None = None,
        overwrite: bool = False,
        rows: tuple[int, int] | None = None,
    ) -> EmbeddingWriter:
        """Open a writer for one backbone's embeddings, creating or resuming the array.

        An incomplete array of the same shape and dtype is resumed from its last fully written
        chunk (``writer.rows_written``). A complete array raises :class:`ConflictError` unless
        ``overwrite``, which deletes it first.

        Args:
            dim: embedding width D.
            dtype: 'float16' or 'float32', chosen per array.
            chunk_rows: rows per chunk; default targets ~4 MiB chunks. Resume granularity.
            rows: (start, stop), a chunk-aligned block for this writer alone, so that several
                processes can fill one array at once (create the array first, e.g. from rank 0
                with ``rows=(0, 0 + chunk_rows)`` or a plain call, then open one block each).
                Default: all rows.
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
                return EmbeddingWriter(g[backbone], dim=dim, **_block(rows))
        if chunk_rows is None:
            chunk_rows = default_chunk_rows(dim, dtype)
        chunk_rows = int(min(max(1, chunk_rows), max(1, n)))
        bg = g.create_group(backbone)
        bg.create_array(
            "embeddings", shape=(n, dim), chunks=(chunk_rows, dim), dtype=dtype, fill_value=0.0
        )
        create_progress_arrays(bg, n, chunk_rows)
        bg.attrs.update({"complete": False, "provenance": {}})
        return EmbeddingWriter(bg, dim=dim, **_block(rows))

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


def _block(rows: tuple[int, int] | None) -> dict[str, int | None]:
    return {"start": 0, "stop": None} if rows is None else {"start": rows[0], "stop": rows[1]}

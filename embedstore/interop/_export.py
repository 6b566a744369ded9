"""``embedstore export-features``: a dataset's table and arrays as Parquet, ``.npz`` or HDF5.

What each file holds (also in ``docs/bring-your-own-embeddings.md``):

- Parquet: one row per sample; columns ``id``, ``label`` (class index; for multilabel a
  fixed-size list of 0/1), ``label_name`` (single-label tasks), ``split`` (train / val / test),
  ``group`` (when the dataset has one), and one fixed-size list column per backbone, named after
  it, in the stored dtype (float16 or float32), and ``<backbone>:missing`` (bool) when the
  array has missing rows (their values are the stored zeros). The schema's metadata
  ``embedstore`` holds the dataset's task, class names and each array's provenance (JSON).
- ``.npz``: ``ids``, ``labels``, ``split``, ``group``, ``class_names``, and ``embeddings`` (one
  backbone) or ``embeddings/<backbone>`` (several), with ``missing`` / ``missing/<backbone>``
  (bool). Members are stored uncompressed, so ``embedstore add`` memory-maps them.
- HDF5: the same names, with ``features`` (one backbone, the TRIDENT name) or
  ``features/<backbone>``; task and class names as attributes of the root.

Every file is written a block of rows at a time to a temporary name beside ``out`` and renamed
into place at the end: peak memory is one block per backbone, and a killed export leaves no
half-written file under the final name. Values are the stored ones, so ``export-features`` then
``add`` gives back the array bit for bit.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedstore.errors import IncompleteArrayError, InvalidDataError, StoreExistsError
from embedstore.interop._base import require
from embedstore.store import SPLIT_CODES

_SPLIT_NAMES = np.array(sorted(SPLIT_CODES, key=SPLIT_CODES.__getitem__))
_FORMATS = {".parquet": "parquet", ".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5"}
_BLOCK_ROWS = 8192


@dataclass(frozen=True)
class ExportedFeatures:
    """What :func:`export_features` wrote."""

    path: str
    format: str
    n_samples: int
    backbones: tuple[str, ...]
    nbytes: int


def export_features(
    store,
    dataset: str,
    out: str | Path,
    *,
    backbones: list[str] | None = None,
    format: str | None = None,
    overwrite: bool = False,
) -> ExportedFeatures:
    """Write ``dataset``'s ids, labels, split, group and the ``backbones`` arrays (default: every
    complete one) to ``out`` (.parquet, .npz, .h5)."""
    from embedstore.store import Store, open_store

    out = Path(out)
    fmt = format or _FORMATS.get(out.suffix.lower())
    if fmt not in ("parquet", "npz", "hdf5"):
        raise InvalidDataError(
            f"cannot tell the format of '{out}'; end it in .parquet, .npz or .h5 (or pass "
            "--format parquet|npz|hdf5)"
        )
    if out.exists() and not overwrite:
        raise StoreExistsError(f"'{out}' exists; pass --overwrite to replace it")
    s = store if isinstance(store, Store) else open_store(store)
    if fmt == "parquet":
        require("pyarrow", "Parquet files")
    elif fmt == "hdf5":
        require("h5py", "HDF5 files")
    names = list(backbones or [b for b in s.backbones(dataset)])
    infos = {b: s.array_info(dataset, b) for b in names}  # raises for an unknown one
    for b, info in infos.items():
        if not info.complete:
            raise IncompleteArrayError(
                f"'{dataset}/{b}' is incomplete ({info.rows_written} of {info.shape[0]} rows); "
                "finish its extraction or import first, or leave it out of -b"
            )
    if not names:
        raise InvalidDataError(f"dataset '{dataset}' has no backbone arrays to export")
    table = _table(s, dataset)
    meta = {
        "dataset": dataset,
        "task": s.dataset_info(dataset).task,
        "class_names": list(s.dataset_info(dataset).class_names),
        "provenance": {b: infos[b].provenance for b in names},
        "dtype": {b: infos[b].dtype for b in names},
    }
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    writer = {"parquet": _parquet, "npz": _npz, "hdf5": _hdf5}[fmt]
    try:
        writer(tmp, s, dataset, names, infos, table, meta)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportedFeatures(str(out), fmt, len(table.ids), tuple(names), out.stat().st_size)


@dataclass(frozen=True)
class _Table:
    """A dataset's rows as exported: ids, labels, split names, and groups where it has them."""

    ids: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    group: np.ndarray | None


def _table(s, dataset: str) -> _Table:
    return _Table(
        ids=s.ids(dataset),
        labels=s.labels(dataset),
        split=_SPLIT_NAMES[s.split(dataset)],
        group=s.group(dataset),
    )


def _blocks(s, dataset: str, name: str, dtype: str, n: int) -> Iterator[tuple[int, np.ndarray]]:
    for a in range(0, n, _BLOCK_ROWS):
        rows = slice(a, min(n, a + _BLOCK_ROWS))
        yield a, s.embeddings(dataset, name, rows=rows).astype(dtype)


def _missing(s, dataset: str, name: str) -> np.ndarray:
    return ~s.valid_rows(dataset, name)


def _parquet(tmp, s, dataset, names, infos, table: _Table, meta) -> None:
    pa = require("pyarrow", "Parquet files")
    pq = require("pyarrow.parquet", "Parquet files")
    n = len(table.ids)
    fields = [pa.field("id", pa.string())]
    labels = table.labels
    if labels.ndim == 2:
        fields.append(pa.field("label", pa.list_(pa.uint8(), labels.shape[1])))
    else:
        fields += [pa.field("label", pa.int64()), pa.field("label_name", pa.string())]
    fields.append(pa.field("split", pa.string()))
    if table.group is not None:
        fields.append(pa.field("group", pa.string()))
    types = {
        b: pa.list_(pa.from_numpy_dtype(np.dtype(infos[b].dtype)), infos[b].shape[1]) for b in names
    }
    missing = {b: _missing(s, dataset, b) for b in names}
    for b in names:
        fields.append(pa.field(b, types[b]))
        if missing[b].any():
            fields.append(pa.field(f"{b}:missing", pa.bool_()))
    schema = pa.schema(fields, metadata={"embedstore": json.dumps(meta, default=str)})
    streams = {b: _blocks(s, dataset, b, infos[b].dtype, n) for b in names}
    with pq.ParquetWriter(tmp, schema) as w:
        for a in range(0, n, _BLOCK_ROWS):
            sl = slice(a, min(n, a + _BLOCK_ROWS))
            cols = [pa.array(table.ids[sl].tolist(), pa.string())]
            lab = labels[sl]
            if lab.ndim == 2:
                cols.append(
                    pa.FixedSizeListArray.from_arrays(pa.array(lab.reshape(-1)), lab.shape[1])
                )
            else:
                cols.append(pa.array(lab, pa.int64()))
                names_ = np.asarray(meta["class_names"])[lab]
                cols.append(pa.array(names_.tolist(), pa.string()))
            cols.append(pa.array(table.split[sl].tolist(), pa.string()))
            if table.group is not None:
                cols.append(pa.array(table.group[sl].tolist(), pa.string()))
            for b in names:
                _, X = next(streams[b])
                flat = pa.array(X.reshape(-1))
                cols.append(pa.FixedSizeListArray.from_arrays(flat, X.shape[1]))
                if missing[b].any():
                    cols.append(pa.array(missing[b][sl], pa.bool_()))
            w.write_batch(pa.record_batch(cols, schema=schema))


def _npz_member(zf: zipfile.ZipFile, key: str, value: np.ndarray) -> None:
    with zf.open(key + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(value), allow_pickle=False)


def _npz(tmp, s, dataset, names, infos, table: _Table, meta) -> None:
    n = len(table.ids)
    one = len(names) == 1
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        _npz_member(zf, "ids", table.ids.astype(str))
        _npz_member(zf, "labels", table.labels)
        _npz_member(zf, "split", table.split.astype(str))
        if table.group is not None:
            _npz_member(zf, "group", table.group.astype(str))
        _npz_member(zf, "class_names", np.asarray(meta["class_names"], dtype=str))
        _npz_member(zf, "embedstore", np.asarray(json.dumps(meta, default=str)))
        for b in names:
            key = "embeddings" if one else f"embeddings/{b}"
            dtype, dim = np.dtype(infos[b].dtype), infos[b].shape[1]
            with zf.open(key + ".npy", "w", force_zip64=True) as f:  # streamed, block by block
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                          "shape": (n, dim)}  # fmt: skip
                np.lib.format.write_array_header_2_0(f, header)
                for _, X in _blocks(s, dataset, b, infos[b].dtype, n):
                    f.write(np.ascontiguousarray(X, dtype=dtype).tobytes())
            _npz_member(zf, "missing" if one else f"missing/{b}", _missing(s, dataset, b))


def _hdf5(tmp, s, dataset, names, infos, table: _Table, meta) -> None:
    h5py = require("h5py", "HDF5 files")
    n = len(table.ids)
    text = h5py.string_dtype()
    with h5py.File(tmp, "w") as f:
        f.create_dataset("ids", data=table.ids.astype(object), dtype=text)
        f.create_dataset("labels", data=table.labels)
        f.create_dataset("split", data=table.split.astype(object), dtype=text)
        if table.group is not None:
            f.create_dataset("group", data=table.group.astype(object), dtype=text)
        f.attrs["embedstore"] = json.dumps(meta, default=str)
        f.attrs["class_names"] = json.dumps(meta["class_names"])
        one = len(names) == 1
        for b in names:
            dim = infos[b].shape[1]
            d = f.create_dataset(
                "features" if one else f"features/{b}", shape=(n, dim), dtype=infos[b].dtype,
                chunks=(min(n, _BLOCK_ROWS), dim),
            )  # fmt: skip
            for a, X in _blocks(s, dataset, b, infos[b].dtype, n):
                d[a : a + len(X)] = X
            f.create_dataset("missing" if one else f"missing/{b}", data=_missing(s, dataset, b))

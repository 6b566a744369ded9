"""Which format a file is in, and a row source to read it: ``.npy`` (+ ids file), ``.npz``, HDF5
(one file, or a folder of one ``.h5`` per sample), Parquet, or kaiko-ai/eva's offline layout.

The readers (``_numpy``, ``_hdf5``, ``_parquet``, ``_eva``) are imported on first use: the CLI
parses ``--format`` without numpy's or h5py's import cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedstore.errors import InvalidDataError

__all__ = ["FORMATS", "guess_format", "open_embeddings"]

FORMATS = ("npy", "npz", "hdf5", "hdf5-folder", "parquet", "eva")
_SUFFIXES = {".npy": "npy", ".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet"}


def guess_format(path: str | Path, fmt: str | None = None) -> str:
    """The format named by ``fmt``, else by the suffix (a folder: eva if it has a manifest.csv,
    else a folder of .h5 files)."""
    path = Path(path)
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidDataError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")
        return fmt
    if path.is_dir():
        return "eva" if (path / "manifest.csv").is_file() else "hdf5-folder"
    if path.name == "manifest.csv":
        return "eva"
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise InvalidDataError(
            f"cannot tell the format of '{path}' from its suffix; pass --format "
            f"({', '.join(FORMATS)})"
        )
    return found


def open_embeddings(
    path: str | Path,
    *,
    format: str | None = None,
    ids: Any = None,
    id_column: str | None = None,
    key: str | None = None,
    ids_key: str | None = None,
):
    """Open embeddings in another tool's format as a row source for ``Store.add_embeddings``.

    Args:
        format: one of :data:`FORMATS` (default: from the suffix).
        ids: a file of ids (one per line, or a CSV with ``id_column``) or a sequence; needed for
            ``.npy``, optional elsewhere.
        id_column: the id column of a Parquet file (``id``), eva manifest (``origin``) or ids CSV.
        key: the array's name: npz member (``embeddings``), HDF5 dataset (``features``, then
            ``embeddings``), Parquet list column (the only one).
        ids_key: where the ids are in an npz (``ids``) or HDF5 file (``ids``, then ``names``).
    """
    from embedstore.interop import _eva, _hdf5, _numpy, _parquet

    path = Path(path)
    fmt = guess_format(path, format)
    if fmt == "npy":
        return _numpy.NpyRows(path, ids=ids, id_column=id_column)
    if fmt == "npz":
        return _numpy.NpzRows(path, key=key, ids_key=ids_key, ids=ids, id_column=id_column)
    if fmt == "hdf5":
        return _hdf5.H5Rows(path, key=key, ids_key=ids_key, ids=ids, id_column=id_column)
    if fmt == "hdf5-folder":
        return _hdf5.H5FolderRows(path, key=key)
    if fmt == "parquet":
        return _parquet.ParquetRows(path, key=key, id_column=id_column)
    return _eva.EvaRows(path, id_column=id_column)

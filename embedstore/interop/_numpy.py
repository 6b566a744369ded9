"""numpy files: ``.npy`` (ids from a separate file) and ``.npz`` (``embeddings`` and ``ids``).

A ``.npy`` is read with ``pread`` a block of rows at a time (no memory map: mapped pages would
count as resident memory), so a file larger than memory is fine. A ``.npz`` member written
uncompressed (``np.savez``) is read the same way from its offset inside the zip; a
compressed one (``np.savez_compressed``) is read whole.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.interop._base import (
    FileRows,
    RawRows,
    bad_key,
    check_matrix,
    need_file,
    read_ids_file,
    sha256_file,
)


class NpyRows(FileRows):
    """An (n, dim) ``.npy`` array; ids from ``ids`` (a file: one per line, or a CSV column)."""

    format = "npy"

    def __init__(self, path: Path, *, ids=None, id_column: str | None = None) -> None:
        need_file(path, ".npy file")
        where = f".npy file '{path}'"
        if ids is None:
            raise InvalidDataError(
                f"{where} holds no sample ids; pass --ids FILE (one id per line, in row order, "
                "or a CSV with an 'id' column)"
            )
        if isinstance(ids, (str, Path)):
            ids = read_ids_file(ids, id_column)
        with open(path, "rb") as f:
            try:
                shape, fortran, dtype = _header(f)
            except ValueError as exc:
                raise InvalidDataError(f"{where} is not a readable .npy file ({exc})") from None
            offset = f.tell()
        check_matrix(shape, dtype, where)  # a 3-D or text array is refused here
        if fortran:  # column-major: rows are not contiguous; numpy's memory map reads them
            self._X = np.load(path, mmap_mode="r")
        else:
            self._X = RawRows(path, offset, dtype, shape)
        super().__init__(path, ids, shape, dtype, sha256_file(path), where)

    def _read(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self._X[index])

    def close(self) -> None:
        if isinstance(self._X, RawRows):
            self._X.close()


def _header(f):
    """(shape, fortran_order, dtype) of the .npy whose file object ``f`` is at its start."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"npy format version {version} (embedstore reads 1.0 and 2.0)")


def _npz_member(path: Path, key: str):
    """Member ``key`` of an .npz: a memory map when stored uncompressed, else loaded whole."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(key + ".npy")
        with zf.open(info) as f:
            try:
                shape, fortran, dtype = _header(f)
            except ValueError:
                return np.load(path, allow_pickle=False)[key]
            header = f.tell()
    plain = not fortran and len(shape) == 2 and not dtype.hasobject
    if info.compress_type != zipfile.ZIP_STORED or not plain:
        return np.load(path, allow_pickle=False)[key]
    # the member's data starts after its local file header (30 bytes + name + extra field)
    with open(path, "rb") as raw:
        raw.seek(info.header_offset + 26)
        n_name, n_extra = np.frombuffer(raw.read(4), dtype="<u2")
    offset = info.header_offset + 30 + int(n_name) + int(n_extra) + header
    return RawRows(path, offset, dtype, shape)


class NpzRows(FileRows):
    """An ``.npz`` with an (n, dim) array ``key`` (default ``embeddings``) and ids ``ids_key``
    (default ``ids``; or a separate ``ids`` file)."""

    format = "npz"

    def __init__(
        self, path: Path, *, key: str | None = None, ids_key: str | None = None, ids=None,
        id_column: str | None = None,
    ) -> None:  # fmt: skip
        need_file(path, ".npz file")
        where = f".npz file '{path}'"
        try:
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
        except (ValueError, zipfile.BadZipFile, OSError) as exc:
            raise InvalidDataError(f"{where} is not a readable .npz ({exc})") from None
        key = key or "embeddings"
        if key not in names:
            raise bad_key(where, key, names, "--key")
        if ids is not None:
            ids = read_ids_file(ids, id_column) if isinstance(ids, (str, Path)) else ids
        else:
            ids_key = ids_key or "ids"
            if ids_key not in names:
                raise bad_key(where, ids_key, names, "--ids-key (or --ids FILE)")
            try:
                ids = np.load(path, allow_pickle=False)[ids_key]
            except ValueError:
                raise InvalidDataError(
                    f"{where}: '{ids_key}' holds Python objects; save ids as a str array "
                    "(np.asarray(ids, dtype=str))"
                ) from None
        self._X = _npz_member(path, key)
        mask = key.replace("embeddings", "missing", 1)  # written by export-features
        missing = np.load(path)[mask] if mask != key and mask in names else None
        sha = sha256_file(path)
        super().__init__(path, ids, self._X.shape, self._X.dtype, sha, where, missing)
        self.key = key

    def _read(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self._X[index])

    def close(self) -> None:
        if isinstance(self._X, RawRows):
            self._X.close()

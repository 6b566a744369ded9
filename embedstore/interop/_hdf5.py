"""HDF5: one file with a ``features`` (or ``embeddings``) dataset and ids, or a folder of one
``.h5`` per sample (the TRIDENT / Patho-Bench slide-feature layout), ids from the file names.

Layouts, as the tools write them (read from their code):

- mahmoodlab/TRIDENT ``trident/wsi_objects/WSI.py`` (``extract_slide_features``, commit
  a91fa84) writes ``<job_dir>/.../<slide name>.h5`` per slide through ``trident/IO.py``
  ``save_h5``: a dataset ``features`` of shape (dim,) (the slide embedding, squeezed) and a
  dataset ``coords``. mahmoodlab/Patho-Bench ``patho_bench/Pooler.py`` (commit 65c8300) writes
  ``<save_path>/<sample id>.h5`` with ``features`` of shape (1, dim) (a batch of one), beside a
  ``_model.txt``. Patch-level files hold ``features`` of shape (n_patches, dim): those are not
  one embedding per sample and are refused here.
- A single file (the "TRIDENT-style features dataset" of a whole cohort, or any h5py script):
  ``features`` or ``embeddings`` of shape (n, dim) and the ids in ``ids`` or ``names`` (bytes or
  str), or from ``--ids FILE``.
- MICS-Lab/thunder (``src/thunder/tasks/pre_computing_patch_embeddings.py``, commit 6fe47e0)
  writes ``embeddings.h5`` with one dataset per sample named "0", "1", ...; it has no
  ``features`` dataset. Such a file is read here too: ids are the dataset names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.interop._base import (
    FileRows,
    bad_key,
    need_file,
    read_ids_file,
    require,
    sha256_file,
    sha256_files,
)

FEATURE_KEYS = ("features", "embeddings")
ID_KEYS = ("ids", "names")


def _text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


class H5Rows(FileRows):
    """One HDF5 file: ``key`` (default ``features``, then ``embeddings``) of shape (n, dim), ids
    in ``ids_key`` (default ``ids``, then ``names``) or from ``ids`` (a file or a sequence)."""

    format = "hdf5"

    def __init__(
        self, path: Path, *, key: str | None = None, ids_key: str | None = None, ids=None,
        id_column: str | None = None,
    ) -> None:  # fmt: skip
        h5py = require("h5py", "HDF5 files")
        need_file(path, "HDF5 file")
        where = f"HDF5 file '{path}'"
        try:
            self._f = h5py.File(path, "r")
        except OSError as exc:
            raise InvalidDataError(f"{where} is not a readable HDF5 file ({exc})") from None
        names = list(self._f.keys())
        self._per_key = None
        if key is None and not any(k in names for k in FEATURE_KEYS) and names:
            if all(k.isdigit() for k in names):  # THUNDER: one dataset per sample
                self._per_key = sorted(names, key=int)
        if self._per_key is not None:
            first = self._f[self._per_key[0]]
            shape, dtype = (len(names), *first.shape), first.dtype
            ids = ids if ids is not None else self._per_key
        else:
            key = key or next((k for k in FEATURE_KEYS if k in names), FEATURE_KEYS[0])
            if key not in self._f or not isinstance(self._f[key], h5py.Dataset):
                raise bad_key(where, key, names, "--key")
            self._X = self._f[key]
            shape, dtype = self._X.shape, self._X.dtype
            if ids is None:
                ids_key = ids_key or next((k for k in ID_KEYS if k in names), ID_KEYS[0])
                if ids_key not in self._f:
                    raise bad_key(where, ids_key, names, "--ids-key (or --ids FILE)")
                ids = _text(self._f[ids_key][()])
        if isinstance(ids, (str, Path)):
            ids = read_ids_file(ids, id_column)
        mask = None if key is None else key.replace("features", "missing", 1)
        missing = self._f[mask][()] if mask and mask != key and mask in self._f else None
        super().__init__(path, ids, shape, dtype, sha256_file(path), where, missing)

    def _read(self, index: np.ndarray) -> np.ndarray:
        if self._per_key is not None:
            return np.stack([np.asarray(self._f[self._per_key[i]][()]) for i in index])
        return np.asarray(self._X[index])  # h5py: increasing indices, as rows() gives

    def close(self) -> None:
        self._f.close()


class H5FolderRows(FileRows):
    """A folder of ``<id>.h5`` files, one per sample, each with ``key`` (default ``features``)
    of shape (dim,) or (1, dim); the id of a row is its file name without ``.h5``."""

    format = "hdf5-folder"

    def __init__(self, path: Path, *, key: str | None = None) -> None:
        self._h5py = require("h5py", "HDF5 files")
        need_file(path, "folder")
        self.files = sorted(p for p in path.iterdir() if p.suffix in (".h5", ".hdf5"))
        where = f"folder of .h5 files '{path}'"
        if not self.files:
            raise InvalidDataError(f"{where} holds no .h5 files; pass a folder of <id>.h5 files")
        self.key = key or "features"
        dim, dtype = self._probe(self.files[0], where)
        ids = [p.stem for p in self.files]
        super().__init__(path, ids, (len(ids), dim), dtype, sha256_files(self.files), where)

    def _probe(self, file: Path, where: str) -> tuple[int, np.dtype]:
        with self._h5py.File(file, "r") as f:
            if self.key not in f:
                raise bad_key(f"{where}: file '{file.name}'", self.key, list(f.keys()), "--key")
            d = f[self.key]
            return self._dim(d.shape, file), d.dtype

    def _dim(self, shape: tuple[int, ...], file: Path) -> int:
        if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
            return int(shape[-1])
        raise InvalidDataError(
            f"'{file}': '{self.key}' has shape {shape}, not one embedding (dim,) or (1, dim); "
            "patch features (n_patches, dim) must be pooled to one vector per sample first"
        )

    def _read(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), self.dim), dtype=self.dtype)
        for j, i in enumerate(index):
            file = self.files[i]
            with self._h5py.File(file, "r") as f:
                if self.key not in f:
                    raise bad_key(f"'{file}'", self.key, list(f.keys()), "--key")
                v = np.asarray(f[self.key][()])
            if self._dim(v.shape, file) != self.dim:
                raise InvalidDataError(
                    f"'{file}': embedding of width {v.shape[-1]}, but the folder's first file "
                    f"has {self.dim}; every file must hold the same backbone's features"
                )
            out[j] = v.reshape(-1)
        return out

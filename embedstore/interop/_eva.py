"""kaiko-ai/eva's offline embeddings: a folder with ``manifest.csv`` and one ``.pt`` per sample.

As eva writes it (read from its code, kaiko-ai/eva):

- ``src/eva/core/callbacks/writers/embeddings/_manifest.py`` (``ManifestManager``): the header
  is ``origin, embeddings, target, split`` followed by any metadata keys; one row per sample:
  ``origin`` the input's file name (``dataset.filename(index)``), ``embeddings`` the ``.pt``
  path relative to the output folder, ``target`` the class index, ``split`` the dataloader's
  name (train / val / test) or empty.
- ``.../embeddings/classification.py`` saves a *list* of tensors per ``.pt`` (more than one
  only for multi-instance inputs); ``src/eva/core/data/datasets/classification/embeddings.py``
  reads it back as one tensor of shape (dim,) or (1, dim), refusing a list of more than one.

Each ``.pt`` is loaded with ``torch.load(weights_only=True)``: a tensor file is data, never code.
The sample id is ``origin``; the manifest gives the dataset's labels and splits when
``embedstore add`` creates the dataset from it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.interop._base import FileRows, need_file, sha256_files

COLUMNS = ("origin", "embeddings", "target", "split")


class EvaRows(FileRows):
    """An eva output folder (or its ``manifest.csv``): ids from ``id_column`` (default
    ``origin``), each row's tensor from the ``.pt`` file named in ``embeddings``."""

    format = "eva"

    def __init__(self, path: Path, *, id_column: str | None = None) -> None:
        need_file(path, "eva output")
        self.manifest = path / "manifest.csv" if path.is_dir() else path
        need_file(self.manifest, "eva manifest")
        self.root = self.manifest.parent
        where = f"eva manifest '{self.manifest}'"
        with open(self.manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [c.strip() for c in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
        self.id_column = id_column or "origin"
        lacking = [c for c in (self.id_column, "embeddings") if c not in header]
        if lacking:
            raise InvalidDataError(
                f"{where} lacks column(s) {', '.join(lacking)} (columns: {', '.join(header)}); "
                f"eva writes {', '.join(COLUMNS)}"
            )
        if not rows:
            raise InvalidDataError(f"{where} has a header but no rows")
        self.files = [self.root / r["embeddings"] for r in rows]
        absent = [str(p) for p in self.files if not p.is_file()]
        if absent:
            raise InvalidDataError(
                f"{where}: {len(absent)} .pt file(s) it lists do not exist, e.g. "
                f"{', '.join(absent[:5])}; paths are read relative to the manifest's folder"
            )
        first = self._load(0)
        digest = sha256_files([self.manifest, *self.files])
        ids = [r[self.id_column] for r in rows]
        super().__init__(path, ids, (len(rows), first.shape[-1]), first.dtype, digest, where)

    def _load(self, i: int) -> np.ndarray:
        import torch

        file = self.files[i]
        try:
            value = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
            raise InvalidDataError(
                f"'{file}' is not a tensor file torch.load(weights_only=True) can read ({exc})"
            ) from None
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise InvalidDataError(
                    f"'{file}' holds {len(value)} tensors (a multi-instance input); one "
                    "embedding per sample is needed: pool them first"
                )
            value = value[0]
        if not isinstance(value, torch.Tensor):
            raise InvalidDataError(f"'{file}' holds a {type(value).__name__}, not a tensor")
        if value.ndim == 2 and value.shape[0] == 1:
            value = value[0]
        if value.ndim != 1:
            raise InvalidDataError(
                f"'{file}' holds a tensor of shape {tuple(value.shape)}, not one embedding "
                "(dim,) or (1, dim); pool patch features to one vector per sample first"
            )
        if value.dtype == torch.bfloat16:
            value = value.float()  # numpy has no bfloat16; float32 holds it exactly
        return value.numpy()

    def _read(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), self.dim), dtype=self.dtype)
        for j, i in enumerate(index):
            v = self._load(int(i))
            if v.shape[0] != self.dim:
                raise InvalidDataError(
                    f"'{self.files[i]}' holds an embedding of width {v.shape[0]}, but the first "
                    f"file has {self.dim}"
                )
            out[j] = v
        return out

    def table_options(self) -> dict:
        """How to read the manifest as a dataset table (ids, labels, splits)."""
        with open(self.manifest, newline="", encoding="utf-8-sig") as f:
            splits = [(r.get("split") or "").strip() for r in csv.DictReader(f)]
        return {
            "id_column": self.id_column,
            "label_columns": ["target"],
            "split_column": "split" if any(splits) else None,
        }

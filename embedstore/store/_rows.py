"""Per-row reads shared by every array aligned by sample: ids, labels, split, group, missing.

Each takes the same selectors as :meth:`Store.embeddings`: ``rows`` (integer indices in any order,
or a slice) or ``split`` ('train', 'val', 'test').
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr

from embedstore.errors import InvalidDataError
from embedstore.store._access import array, values
from embedstore.store._checks import check_backbone_arrays, check_labels
from embedstore.store._guard import reading
from embedstore.store._info import read_rows
from embedstore.store._layout import DatasetAttrs
from embedstore.store._strings import read_text
from embedstore.store._validate import _split_code

Rows = np.ndarray | Sequence[int] | slice | None


class PerRowReads:
    """The per-row accessors of :class:`Store` (a mixin: it needs ``_dataset_group``,
    ``_backbone_group`` and ``location``)."""

    location: str

    def _dataset_group(self, name: str) -> zarr.Group:
        raise NotImplementedError

    def _backbone_group(self, dataset: str, backbone: str) -> zarr.Group:
        raise NotImplementedError

    def _data_arrays(self, name: str) -> set[str]:
        raise NotImplementedError

    def ids(self, dataset: str, *, rows: Rows = None, split: str | None = None) -> np.ndarray:
        """Sample ids, array of shape (n_rows,) of str (all rows, or the ``rows`` / ``split``
        selection, as for :meth:`embeddings`)."""
        return read_text(self._read(dataset, "ids", rows, split))

    def labels(self, dataset: str, *, rows: Rows = None, split: str | None = None) -> np.ndarray:
        """Labels: (n_rows,) int64, or (n_rows, n_classes) uint8 for multilabel."""
        labels = self._read(dataset, "labels", rows, split)
        attrs = DatasetAttrs.of(self._dataset_group(dataset))
        check_labels(labels, attrs.task, len(attrs.class_names), self.location, dataset)
        return labels

    def split(self, dataset: str, *, rows: Rows = None, split: str | None = None) -> np.ndarray:
        """Split codes, (n_rows,) uint8: 0 train, 1 val, 2 test."""
        return self._read(dataset, "split", rows, split)

    def group(
        self, dataset: str, *, rows: Rows = None, split: str | None = None
    ) -> np.ndarray | None:
        """Group (patient) ids, (n_rows,) str, or None when the dataset has none."""
        self._dataset_group(dataset)
        if "group" not in self._data_arrays(dataset):
            return None
        return read_text(self._read(dataset, "group", rows, split))

    def split_rows(self, dataset: str, split: str) -> np.ndarray:
        """Row indices of one split ('train', 'val' or 'test'), sorted."""
        code = _split_code(split)
        return np.flatnonzero(self.split(dataset) == code)

    def _selection(self, dataset: str, rows: Rows, split: str | None) -> np.ndarray | slice | None:
        if split is not None:
            if rows is not None:
                raise InvalidDataError("pass rows or split, not both")
            return self.split_rows(dataset, split)
        if rows is None or isinstance(rows, slice):
            return rows
        rows = np.asarray(rows)
        n = DatasetAttrs.of(self._dataset_group(dataset)).n
        if rows.ndim != 1 or (len(rows) and rows.dtype.kind not in "iu"):
            raise InvalidDataError(
                f"rows must be a 1-D array of integer row indices or a slice, got "
                f"shape {rows.shape} {rows.dtype}"
            )
        if len(rows) and (rows.min() < -n or rows.max() >= n):
            raise InvalidDataError(
                f"rows must be in [0, {n}) for dataset '{dataset}' ({n} samples), got "
                f"[{rows.min()}, {rows.max()}]"
            )
        return np.where(rows < 0, rows + n, rows).astype(np.int64)

    def _read(self, dataset: str, name: str, rows: Rows, split: str | None) -> np.ndarray:
        sel = self._selection(dataset, rows, split)
        g = self._dataset_group(dataset)
        with reading(self.location, f"'{dataset}/{name}'"):
            return take(array(g, name), sel)

    def valid_rows(
        self, dataset: str, backbone: str, *, rows: Rows = None, split: str | None = None
    ) -> np.ndarray:
        """Boolean mask (n_rows,): False where the image was missing at extraction."""
        sel = self._selection(dataset, rows, split)
        bg = self._backbone_group(dataset, backbone)
        with reading(self.location, f"'{dataset}/{backbone}/missing'"):
            check_backbone_arrays(bg, self.location, f"{dataset}/{backbone}")
            return ~take(array(bg, "missing"), sel).astype(bool)

    def missing(
        self, dataset: str, backbone: str, *, rows: Rows = None, split: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows recorded missing at extraction (within the selection): dicts with row, id and
        reason, in row order."""
        bg = self._backbone_group(dataset, backbone)
        with reading(self.location, f"'{dataset}/{backbone}/missing'"):
            check_backbone_arrays(bg, self.location, f"{dataset}/{backbone}")
            mask = values(array(bg, "missing")).astype(bool)
        sel = self._selection(dataset, rows, split)
        chosen = np.arange(len(mask)) if sel is None else np.arange(len(mask))[sel]
        found = np.unique(chosen[mask[chosen]])
        if not len(found):
            return []
        ids = self.ids(dataset, rows=found)
        with reading(self.location, f"'{dataset}/{backbone}/missing_reason'"):
            reasons = read_text(read_rows(array(bg, "missing_reason"), found))
        return [
            {"row": int(r), "id": str(i), "reason": str(why)}
            for r, i, why in zip(found, ids, reasons, strict=True)
        ]


def take(arr: zarr.Array, sel: np.ndarray | slice | None) -> np.ndarray:
    """Read all rows (None), a slice, or sorted/unsorted row indices of an array."""
    if sel is None:
        return values(arr, ...)
    if isinstance(sel, slice):
        return values(arr, sel)
    return read_rows(arr, sel)

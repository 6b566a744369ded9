"""CSV manifests: one row per image with a path column (relative to the CSV), one label column
(class names or indices) or several 0/1 columns (multilabel), and optional split and group columns.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from embedstore.data.base import Source
from embedstore.data.images import DICOM_EXTENSIONS, read_image, require_pydicom
from embedstore.data.splits import DEFAULT_FRACTIONS
from embedstore.errors import SourceError

__all__ = ["CsvSource"]


def _as_int(value: str) -> int | None:
    try:
        f = float(value)
    except ValueError:
        return None
    return int(f) if f == int(f) else None


class CsvSource(Source):
    """Images listed in a CSV file.

    Args:
        path: the .csv file; image paths in it are relative to its folder (or absolute).
        path_column: column holding the image path.
        label_columns: one column (class names or integer indices) or several 0/1 columns
            (multilabel, class names = column names). Default ``["label"]``.
        split_column: optional column with train / val / test; otherwise stratified splits.
        group_column: optional patient / group column; made splits keep each group together.
        class_names: names for integer labels (default "0" .. "K-1").
    """

    def __init__(
        self,
        path: str | Path,
        *,
        path_column: str = "path",
        label_columns: Sequence[str] | str | None = None,
        split_column: str | None = None,
        group_column: str | None = None,
        class_names: Sequence[str] | None = None,
        task: str | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        seed: int = 0,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"CSV manifest '{path}' does not exist; pass the path of a .csv file")
        if isinstance(label_columns, str):
            label_columns = [label_columns]
        label_columns = list(label_columns or ["label"])
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
        wanted = {"--path-column": [path_column], "--label-column": label_columns}
        if split_column:
            wanted["--split-column"] = [split_column]
        if group_column:
            wanted["--group-column"] = [group_column]
        for option, names in wanted.items():
            for name in names:
                if name not in columns:
                    raise SourceError(
                        f"CSV manifest '{path}' has no column '{name}' (columns: "
                        f"{', '.join(columns) or 'none'}); name the right one with {option}"
                    )
        if not rows:
            raise SourceError(f"CSV manifest '{path}' has a header but no rows")
        desc = f"CSV manifest {path}"
        ids = [r[path_column] for r in rows]
        empty = [i for i, v in enumerate(ids) if not v]
        if empty:
            raise SourceError(f"{desc}: empty '{path_column}' in data row(s) {empty[:10]}")
        if len(label_columns) > 1:
            labels, names = self._multilabel(rows, label_columns, desc)
        else:
            labels, names = self._single_label(rows, label_columns[0], class_names, desc)
        base = path.parent
        self.paths = [str(p if Path(p).is_absolute() else base / p) for p in ids]
        if any(Path(p).suffix.lower() in DICOM_EXTENSIONS for p in self.paths):
            require_pydicom()
        super().__init__(
            description=desc,
            ids=ids,
            labels=labels,
            class_names=names,
            task=task,
            split=[r[split_column] for r in rows] if split_column else None,
            group=[r[group_column] for r in rows] if group_column else None,
            fractions=fractions,
            seed=seed,
        )
        dup = len(self.ids) - len(set(self.ids.tolist()))
        if dup:
            raise SourceError(f"{desc}: {dup} image path(s) are listed more than once")

    @staticmethod
    def _single_label(
        rows: list[dict[str, str]], column: str, class_names: Sequence[str] | None, desc: str
    ) -> tuple[np.ndarray, list[str]]:
        values = [r[column] for r in rows]
        blank = [i for i, v in enumerate(values) if v == ""]
        if blank:
            raise SourceError(f"{desc}: empty label in column '{column}', data row(s) {blank[:10]}")
        ints = [_as_int(v) for v in values]
        if all(i is not None for i in ints):
            labels = np.asarray(ints, dtype=np.int64)
            if labels.min() < 0:
                raise SourceError(f"{desc}: integer labels must be >= 0, got {labels.min()}")
            k = int(labels.max()) + 1
            names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
            if len(names) < k:
                raise SourceError(
                    f"{desc}: labels go up to {k - 1} but only {len(names)} class names were given"
                )
            return labels, names
        names = sorted(set(values)) if class_names is None else list(class_names)
        index = {name: i for i, name in enumerate(names)}
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise SourceError(
                f"{desc}: label(s) {unknown[:5]} in column '{column}' are not among the class "
                f"names {names}"
            )
        return np.asarray([index[v] for v in values], dtype=np.int64), names

    @staticmethod
    def _multilabel(
        rows: list[dict[str, str]], columns: list[str], desc: str
    ) -> tuple[np.ndarray, list[str]]:
        labels = np.zeros((len(rows), len(columns)), dtype=np.uint8)
        for j, col in enumerate(columns):
            for i, r in enumerate(rows):
                v = _as_int(r[col]) if r[col] != "" else None
                if v not in (0, 1):
                    raise SourceError(
                        f"{desc}: multilabel column '{col}' must hold 0 or 1, got '{r[col]}' in "
                        f"data row {i}; pass a single --label-column for class-name labels"
                    )
                labels[i, j] = v
        return labels, list(columns)

    def load(self, index: int) -> Image.Image | np.ndarray:
        return read_image(self.paths[index])

    def locate(self, index: int) -> str:
        return self.paths[index]

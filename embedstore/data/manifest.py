"""CSV manifests: one row per image with a path column, one label column (class names or indices)
or several 0/1 columns (multilabel), and optional split and group columns.

Paths, as a researcher's CSV holds them:
- relative paths are relative to the CSV's folder; ``..`` is allowed, and so are absolute paths
  (a data disk elsewhere): the stored sample id is always the path exactly as written in the CSV;
- ``s3://``, ``https://`` and ``http://`` URLs are read through fsspec (the ``remote`` extra;
  credentials and endpoint from the environment, see :mod:`embedstore.data.remote`). The manifest
  itself may be at a URL too; its relative paths are then relative to the manifest's URL.
- every local file listed must exist when the source is opened: the error lists the first few
  that do not (with ``allow_missing``, as ``--skip-bad`` does, they become missing rows instead).
  URLs are not checked up front (one request each); a missing object is found when it is read.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from embedstore.data.base import Source
from embedstore.data.images import DICOM_EXTENSIONS, read_image, require_pydicom
from embedstore.data.labels import parse_int, read_labels
from embedstore.data.remote import is_url, join_url, read_url_text
from embedstore.data.splits import DEFAULT_FRACTIONS, SPLIT_ALIASES
from embedstore.errors import SourceError

__all__ = ["CsvSource"]


def _lines(line_of: list[int], rows: Sequence[int], limit: int = 5) -> str:
    """'line 4' / 'lines 4, 9, 12 and 3 more' for data rows given by index."""
    shown = ", ".join(str(line_of[i]) for i in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"line{'s' if len(rows) > 1 else ''} {shown}{more}"


def _read_table(path: str, desc: str) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Header, rows as {column: stripped value}, and each row's line number in the file."""
    try:
        if is_url(path):
            text = read_url_text(path)
        else:
            text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{desc} is not UTF-8 text ({exc}); save the manifest as CSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[dict[str, str]] = []
    line_of: list[int] = []
    try:
        columns = [c.strip() for c in (reader.fieldnames or [])]
        for r in reader:
            if None in r:
                raise SourceError(
                    f"{desc}: line {reader.line_num} has {len(columns) + len(r[None])} fields "
                    f"but the header has {len(columns)} ({', '.join(columns)}); quote values "
                    "that contain commas"
                )
            rows.append({(k or "").strip(): (v or "").strip() for k, v in r.items()})
            line_of.append(reader.line_num)
    except csv.Error as exc:
        raise SourceError(f"{desc}: not a readable CSV ({exc})") from None
    return columns, rows, line_of


class CsvSource(Source):
    """Images listed in a CSV file.

    Args:
        path: the .csv file (local, or an ``s3://`` / ``https://`` URL); image paths in it are
            relative to its folder, absolute, or URLs. Ids are the paths as written.
        path_column: column holding the image path.
        label_columns: one column (class names, or integer class ids: the distinct values,
            ascending, become the classes, named by value) or several 0/1 columns (multilabel,
            class names = column names). Default ``["label"]``.
        split_column: optional column with train / val / test; otherwise stratified splits.
        group_column: optional patient / group column; made splits keep each group together.
        class_names: names for integer labels (one per distinct value, lowest first, or one
            per index 0..max), or the order of name labels.
        task: binary, multiclass, multilabel or ordinal (default: inferred; ordinal never is).
        allow_missing: keep rows whose local file does not exist (they fail to load, and
            ``skip_bad`` records them as missing rows) instead of refusing the manifest.
        meta_columns: extra per-sample attribute columns (site, scanner, ...), kept as text in
            ``meta`` and stored beside the labels.
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
        allow_missing: bool = False,
        meta_columns: Sequence[str] = (),
    ) -> None:
        text = str(path)
        remote = is_url(text)
        if not remote and not Path(text).is_file():
            raise SourceError(f"CSV manifest '{text}' does not exist; pass the path of a .csv file")
        if isinstance(label_columns, str):
            label_columns = [label_columns]
        label_columns = list(label_columns or ["label"])
        desc = f"CSV manifest {text}"
        columns, rows, line_of = _read_table(text, f"CSV manifest '{text}'")
        wanted = {"--path-column": [path_column], "--label-column": label_columns}
        if split_column:
            wanted["--split-column"] = [split_column]
        if group_column:
            wanted["--group-column"] = [group_column]
        if meta_columns:
            wanted["--meta-column"] = list(meta_columns)
        for option, names in wanted.items():
            for name in names:
                if name not in columns:
                    raise SourceError(
                        f"CSV manifest '{text}' has no column '{name}' (columns: "
                        f"{', '.join(columns) or 'none'}); name the right one with {option}"
                    )
        if not rows:
            raise SourceError(f"CSV manifest '{text}' has a header but no rows")
        ids = [r[path_column] for r in rows]
        empty = [i for i, v in enumerate(ids) if not v]
        if empty:
            raise SourceError(f"{desc}: empty '{path_column}' on {_lines(line_of, empty)}")
        _check_unique(ids, line_of, desc)
        if len(label_columns) > 1:
            labels, names = _multilabel(rows, label_columns, class_names, line_of, desc)
            note = ""
        else:
            labels, names, note = read_labels(
                [r[label_columns[0]] for r in rows],
                class_names=class_names,
                task=task,
                where=desc,
                what=f"in column '{label_columns[0]}'",
                rows=lambda picked: _lines(line_of, picked),
            )
        if remote:
            self.paths = [join_url(text, p) for p in ids]
        else:
            base = os.path.dirname(text)  # os.path, not pathlib: 10x faster on 200k rows
            self.paths = [
                p if is_url(p) or os.path.isabs(p) else os.path.join(base, p) for p in ids
            ]
        if any(os.path.splitext(p)[1].lower() in DICOM_EXTENSIONS for p in self.paths):
            require_pydicom()
        split = None
        if split_column:
            split = _parse_split(rows, split_column, line_of, desc)
        super().__init__(
            description=desc,
            ids=ids,
            labels=labels,
            class_names=names,
            task=task,
            split=split,
            group=[r[group_column] for r in rows] if group_column else None,
            fractions=fractions,
            seed=seed,
            label_note=note,
        )
        if not allow_missing:
            _check_files_exist(self.paths, ids, line_of, desc)
        self.meta = {c: np.asarray([r[c] for r in rows], dtype=str) for c in meta_columns}

    def load(self, index: int) -> Image.Image | np.ndarray:
        return read_image(self.paths[index])

    def locate(self, index: int) -> str:
        return self.paths[index]


def _check_unique(ids: list[str], line_of: list[int], desc: str) -> None:
    first: dict[str, int] = {}
    repeats: list[str] = []
    for i, p in enumerate(ids):
        key = os.path.normpath(p) if not is_url(p) else p
        if key in first:
            repeats.append(f"'{p}' (lines {line_of[first[key]]} and {line_of[i]})")
        else:
            first[key] = i
    if repeats:
        raise SourceError(
            f"{desc}: {len(repeats)} image(s) listed more than once, e.g. "
            f"{', '.join(repeats[:5])}; each image must be one row (ids must be unique)"
        )


def _check_files_exist(paths: list[str], ids: list[str], line_of: list[int], desc: str) -> None:
    missing = [i for i, p in enumerate(paths) if not is_url(p) and not os.path.isfile(p)]
    if missing:
        shown = ", ".join(f"'{ids[i]}' (line {line_of[i]})" for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SourceError(
            f"{desc}: {len(missing)} of {len(paths)} listed image file(s) do not exist: "
            f"{shown}{more}; relative paths are read from the CSV's folder. Fix the paths, or "
            "pass --skip-bad (allow_missing=True) to record them as missing rows"
        )


def _parse_split(
    rows: list[dict[str, str]], column: str, line_of: list[int], desc: str
) -> np.ndarray:
    values = [r[column].lower() for r in rows]
    bad = [i for i, v in enumerate(values) if v not in SPLIT_ALIASES]
    if bad:
        unknown = sorted({rows[i][column] for i in bad})
        raise SourceError(
            f"{desc}: split column '{column}' holds {unknown[:5]} on {_lines(line_of, bad)}; "
            f"expected train, val or test (also: {', '.join(sorted(SPLIT_ALIASES))}). Fix the "
            "values, or leave --split-column out to make stratified splits"
        )
    return np.asarray([SPLIT_ALIASES[v] for v in values], dtype=np.uint8)


def _multilabel(
    rows: list[dict[str, str]],
    columns: list[str],
    class_names: Sequence[str] | None,
    line_of: list[int],
    desc: str,
) -> tuple[np.ndarray, list[str]]:
    if class_names is not None and len(class_names) != len(columns):
        raise SourceError(
            f"{desc}: {len(columns)} label columns ({', '.join(columns)}) but "
            f"{len(class_names)} class names; give one name per column, in the same order"
        )
    labels = np.zeros((len(rows), len(columns)), dtype=np.uint8)
    for j, col in enumerate(columns):
        for i, r in enumerate(rows):
            v = parse_int(r[col])
            if v not in (0, 1):
                raise SourceError(
                    f"{desc}: multilabel column '{col}' must hold 0 or 1, got '{r[col]}' on "
                    f"line {line_of[i]}; pass a single --label-column for class-name labels"
                )
            labels[i, j] = v
    return labels, list(class_names) if class_names is not None else list(columns)

"""Image sources (folder, CSV manifest, MedMNIST .npz, in-memory arrays, DICOM files, the Br35H
demo), splits, and the preprocessing shared by every backbone.

``open_source(spec)`` turns what a user types (a folder, a .csv, a .npz, or ``demo``) into a
:class:`Source`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from embedstore.data.base import ArraySource, Source
from embedstore.data.demo import demo_root, demo_source
from embedstore.data.folder import ImageFolderSource
from embedstore.data.images import read_dicom, read_image
from embedstore.data.manifest import CsvSource
from embedstore.data.npz import NpzSource
from embedstore.data.splits import DEFAULT_FRACTIONS, make_splits
from embedstore.data.transforms import ImageTransform, to_rgb
from embedstore.errors import SourceError

__all__ = [
    "DEFAULT_FRACTIONS",
    "ArraySource",
    "CsvSource",
    "ImageFolderSource",
    "ImageTransform",
    "NpzSource",
    "Source",
    "demo_root",
    "demo_source",
    "make_splits",
    "open_source",
    "read_dicom",
    "read_image",
    "to_rgb",
]


def open_source(
    spec: str | Path | Source,
    *,
    path_column: str = "path",
    label_columns: Sequence[str] | str | None = None,
    split_column: str | None = None,
    group_column: str | None = None,
    task: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Source:
    """A folder, a ``.csv`` manifest, a ``.npz`` (MedMNIST) or ``"demo"`` -> a :class:`Source`.

    A :class:`Source` passes through unchanged. The CSV options are used only for a ``.csv``.
    """
    if isinstance(spec, Source):
        return spec
    text = str(spec)
    if text == "demo":
        return demo_source(fractions=fractions, seed=seed)
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path, task=task, fractions=fractions, seed=seed)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvSource(
            path,
            path_column=path_column,
            label_columns=label_columns,
            split_column=split_column,
            group_column=group_column,
            task=task,
            fractions=fractions,
            seed=seed,
        )
    if suffix == ".npz":
        return NpzSource(path, task=task)
    if not path.exists():
        raise SourceError(
            f"source '{text}' does not exist; expected an image folder, a .csv manifest, "
            "a MedMNIST .npz, or 'demo'"
        )
    raise SourceError(
        f"source '{text}' is a '{suffix or 'extension-less'}' file; expected an image folder, "
        "a .csv manifest, a MedMNIST .npz, or 'demo'"
    )

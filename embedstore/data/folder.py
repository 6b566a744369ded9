"""Image folders: one subfolder per class (``root/<class>/...``), optionally under split folders
(``root/train/<class>/...``, ``root/val/...``, ``root/test/...``). Ids are relative paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from embedstore.data.base import Source, order_classes
from embedstore.data.images import DICOM_EXTENSIONS, is_image_file, read_image, require_pydicom
from embedstore.data.splits import DEFAULT_FRACTIONS, SPLIT_ALIASES
from embedstore.errors import SourceError

__all__ = ["ImageFolderSource"]


# Folders that operating systems, archivers and NAS boxes leave behind; never classes or images.
IGNORED_DIRS = frozenset({"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information"})


def _ignored(name: str) -> bool:
    """Hidden files and folders (.DS_Store, ._x.jpg, .thumbs/) and the folders above."""
    return name.startswith(".") or name in IGNORED_DIRS


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not _ignored(p.name))


def _images_under(path: Path) -> list[Path]:
    """Image files under ``path``, recursively, skipping hidden and system files and folders
    (Thumbs.db and desktop.ini are skipped by extension)."""
    found = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not _ignored(d)]
        found += [Path(folder) / f for f in files if is_image_file(Path(f))]
    return sorted(found)


class ImageFolderSource(Source):
    """Every image file under ``root/<class>/`` (searched recursively), labelled by its folder.

    Class names are the subfolder names, sorted, or in the order of ``class_names`` (which must
    name exactly the subfolders). When the top-level folders are split names (train / val /
    test), the classes are read one level below and the splits are the source's; otherwise
    stratified splits are made with ``seed``. Hidden files and folders (``.DS_Store``,
    ``._x.jpg``), ``__MACOSX``, ``@eaDir``, ``Thumbs.db`` and non-image files are ignored.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        task: str | None = None,
        class_names: Sequence[str] | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        seed: int = 0,
        description: str | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise SourceError(
                f"image folder '{root}' does not exist or is not a folder; expected a folder with "
                "one subfolder per class (root/<class>/<image>)"
            )
        top = _subdirs(root)
        if not top:
            raise SourceError(
                f"image folder '{root}' has no subfolders; expected one subfolder per class "
                "(root/<class>/<image>), e.g. root/normal/001.png and root/tumour/002.png"
            )
        split_layout = all(p.name.lower() in SPLIT_ALIASES for p in top)
        parts: list[tuple[int | None, Path]] = (
            [(SPLIT_ALIASES[p.name.lower()], p) for p in top] if split_layout else [(None, root)]
        )
        found = {c.name for _, base in parts for c in _subdirs(base)}
        if not found:
            raise SourceError(f"image folder '{root}': no class subfolders under the split folders")
        class_names = order_classes(found, class_names, task, f"image folder '{root}'")
        index = {name: i for i, name in enumerate(class_names)}
        files: list[Path] = []
        labels: list[int] = []
        splits: list[int] = []
        for code, base in parts:
            for class_dir in _subdirs(base):
                images = _images_under(class_dir)
                files += images
                labels += [index[class_dir.name]] * len(images)
                splits += [code if code is not None else 0] * len(images)
        empty = sorted(set(class_names) - {class_names[i] for i in set(labels)})
        if files and empty:
            raise SourceError(
                f"image folder '{root}': class folder(s) {empty[:5]} hold no image files, so "
                "those classes would have no samples; remove the folder(s) or add images"
            )
        if not files:
            raise SourceError(
                f"image folder '{root}' holds no image files (looked for .png, .jpg, .jpeg, .bmp, "
                ".tif, .gif, .webp, .dcm under its class subfolders)"
            )
        if any(f.suffix.lower() in DICOM_EXTENSIONS for f in files):
            require_pydicom()
        self.root = root
        self.paths = [str(f) for f in files]
        super().__init__(
            description=description or f"image folder {root}",
            ids=[f.relative_to(root).as_posix() for f in files],
            labels=np.asarray(labels, dtype=np.int64),
            class_names=class_names,
            task=task,
            split=np.asarray(splits, dtype=np.uint8) if split_layout else None,
            fractions=fractions,
            seed=seed,
        )

    def load(self, index: int) -> Image.Image | np.ndarray:
        return read_image(self.paths[index])

    def locate(self, index: int) -> str:
        return self.paths[index]

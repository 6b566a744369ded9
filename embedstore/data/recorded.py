"""A stored dataset's images again: reopen the source its ``source`` record names.

The stored dataset attribute ``source`` is the description the source wrote at extraction
("image folder /data/x; splits: ...", "demo: Br35H ...", "MedMNIST npz /data/y.npz; ...",
"CSV manifest /data/m.csv; splits: ..."). Folders, ``.npz`` files, CSV manifests (opened with the
default columns) and the demo reopen from it; tar shards and URLs do not: pass ``source``.
Used by the image analyses and the audit's thumbnails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.data.base import Source
from embedstore.errors import SourceError

__all__ = ["open_dataset_source", "recorded_source"]

_DESCRIPTIONS = (
    (re.compile(r"^demo:"), lambda m: "demo"),
    (re.compile(r"^image folder (.+?)(?:; splits:.*)?$"), lambda m: m.group(1)),
    (re.compile(r"^MedMNIST npz (.+?)(?:; splits:.*)?$"), lambda m: m.group(1)),
    (re.compile(r"^CSV manifest (.+?)(?:; splits:.*)?$"), lambda m: m.group(1)),
)


def recorded_source(recorded: str) -> str | None:
    """The folder, file or ``"demo"`` a stored ``source`` description names, if it names one
    that exists here; None otherwise."""
    for pattern, path in _DESCRIPTIONS:
        m = pattern.match(recorded)
        if m:
            spec = path(m)
            return spec if spec == "demo" or Path(spec).exists() else None
    return None


def open_dataset_source(
    store: Any, dataset: str, source: str | os.PathLike[str] | Source | None
) -> tuple[Source, np.ndarray]:
    """The dataset's images and, per store row, the index of its image in that source.

    ``source`` overrides the store's record of where the images came from. Raises
    :class:`~embedstore.errors.SourceError` when the record names nothing reachable here, or
    when the source lacks some of the dataset's ids.
    """
    from embedstore.data import open_source

    recorded = store.dataset_info(dataset).source
    if source is None:
        spec = recorded_source(recorded)
        if spec is None:
            raise SourceError(
                f"dataset '{dataset}' records its images as '{recorded}', which cannot be "
                "reopened here; pass the images with --source (a folder, .csv, .npz or 'demo')"
            )
        source = spec
    src = open_source(source if isinstance(source, (str, Source)) else Path(source))
    index = {sid: i for i, sid in enumerate(src.ids.tolist())}
    ids = store.ids(dataset)
    missing = [sid for sid in ids.tolist() if sid not in index]
    if missing:
        raise SourceError(
            f"{len(missing)} of the {len(ids)} samples of dataset '{dataset}' are not in source "
            f"'{src.description}' (e.g. '{missing[0]}'); pass the source the store was "
            "extracted from with --source"
        )
    return src, np.array([index[sid] for sid in ids.tolist()], dtype=np.int64)

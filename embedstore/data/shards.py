"""WebDataset-style tar shards as an image source.

A sample is the group of members sharing a key (WebDataset's rule: the member path up to the
first "." of its file name, so ``train/00017.seg.png`` has key ``train/00017``). Each sample has
one image member (``.jpg``, ``.jpeg``, ``.png``, ``.dcm`` or another image extension) and its
label in ``<key>.cls`` or ``<key>.json``:

- ``<key>.cls``: the class, as an integer index or as a class name (text);
- ``<key>.json``: an object with ``"label"`` (index or name), or ``"labels"`` for multilabel
  (a list of names present, or a 0/1 list of fixed length), and optionally ``"split"``
  (train / val / test) and ``"group"`` (patient id). With both files, the class comes from
  ``.cls`` and split / group from ``.json``.

Ids are the image members' names (``benign/00.png``), unique across shards, so a tar made from an
image folder gives the folder's ids. Rows follow the shards in order, members in tar order.
Random access comes from the cached member index of :mod:`embedstore.data.tarindex`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from embedstore.data.base import Source
from embedstore.data.images import (
    DICOM_EXTENSIONS,
    IMAGE_EXTENSIONS,
    decode_image,
    require_pydicom,
)
from embedstore.data.labels import parse_int, read_labels
from embedstore.data.splits import DEFAULT_FRACTIONS, parse_split_names
from embedstore.data.tarindex import index_shard, shard_paths
from embedstore.errors import BadImageError, SourceError

__all__ = ["TarShardSource"]

# webdataset/tariterators.py base_plus_ext: key = path up to the first "." of the file name.
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_IMAGE_EXTS = {e.lstrip(".") for e in IMAGE_EXTENSIONS | DICOM_EXTENSIONS}


def _hidden(name: str) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in name.split("/"))


class TarShardSource(Source):
    """Samples stored in uncompressed tar shards, read at random through a cached member index.

    Args:
        shards: a brace pattern (``images-{000000..000099}.tar``), a glob, a folder of .tar
            files, one .tar, or a list of these (see :func:`~embedstore.data.tarindex.shard_paths`).
        class_names: names for integer labels (one per distinct value, lowest first), or the
            order of name labels.
        task: binary, multiclass, multilabel or ordinal (default: inferred).
    """

    def __init__(
        self,
        shards: str | Path | Sequence[str | Path],
        *,
        class_names: Sequence[str] | None = None,
        task: str | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        seed: int = 0,
        meta_columns: Sequence[str] = (),
    ) -> None:
        paths = shard_paths(shards)
        desc = f"tar shards {shards if isinstance(shards, (str, Path)) else len(paths)}"
        ids: list[str] = []
        shard_of: list[int] = []
        spans: list[tuple[int, int]] = []
        metas: list[dict[str, str]] = []
        seen: dict[str, int] = {}
        for s, path in enumerate(paths):
            index = index_shard(path)
            samples = _group(index.files, path)
            for image, meta in samples.values():
                if image in seen:
                    raise SourceError(
                        f"{desc}: member '{image}' is in both '{paths[seen[image]]}' and "
                        f"'{path}'; sample keys must be unique across shards"
                    )
                seen[image] = s
                ids.append(image)
                shard_of.append(s)
                spans.append(index.files[image])
                metas.append({ext: index.texts.get(name, "") for ext, name in meta.items()})
        if not ids:
            raise SourceError(f"{desc}: no samples (no image members with a .cls or .json label)")
        unlabelled = [ids[i] for i, m in enumerate(metas) if not m]
        if unlabelled:
            raise SourceError(
                f"{desc}: {len(unlabelled)} image member(s) have no <key>.cls or <key>.json "
                f"label, e.g. {unlabelled[:3]}; add one per sample"
            )
        fields = [_fields(ids[i], m, desc) for i, m in enumerate(metas)]
        labels, names, note = _labels(fields, ids, class_names, task, desc)
        split, group = _optional(fields, "split", desc), _optional(fields, "group", desc)
        self.shards = [str(p) for p in paths]
        self.shard_of = np.asarray(shard_of, dtype=np.int32)
        self.spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)  # (n, 2) offset, size
        if any(Path(i).suffix.lower() in DICOM_EXTENSIONS for i in ids):
            require_pydicom()
        super().__init__(
            description=desc,
            ids=ids,
            labels=labels,
            class_names=names,
            task=task,
            split=parse_split_names(split, where=desc) if split is not None else None,
            group=group,
            fractions=fractions,
            seed=seed,
            label_note=note,
        )
        self.meta = meta_fields(metas, ids, meta_columns, desc)

    def read_bytes(self, index: int) -> bytes:
        """The image member's bytes: one seek and one read in its shard."""
        offset, size = (int(v) for v in self.spans[index])
        try:
            with open(self.shards[int(self.shard_of[index])], "rb") as fh:
                fh.seek(offset)
                data = fh.read(size)
        except OSError as exc:
            raise BadImageError(f"cannot read '{self.locate(index)}' ({exc})") from None
        if len(data) != size:
            raise BadImageError(
                f"'{self.locate(index)}': the shard ends after {len(data)} of {size} bytes; was "
                "it changed since it was indexed? (the index is rebuilt when size or mtime change)"
            )
        return data

    def load(self, index: int) -> Image.Image | np.ndarray:
        suffix = Path(str(self.ids[index])).suffix
        return decode_image(self.read_bytes(index), self.locate(index), suffix=suffix)

    def locate(self, index: int) -> str:
        return f"{self.shards[int(self.shard_of[index])]}[{self.ids[index]}]"


def _group(files: dict[str, tuple[int, int]], path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """key -> (image member, {"cls"/"json": member}), in tar order; hidden members skipped."""
    images: dict[str, str] = {}
    meta: dict[str, dict[str, str]] = {}
    for name in files:
        match = _KEY.match(name)
        if match is None or _hidden(name):
            continue
        key, ext = match.group(1), match.group(2).lower()
        if ext in _IMAGE_EXTS:
            if key in images:
                raise SourceError(
                    f"tar shard '{path}': sample '{key}' has two images ({images[key]}, {name}); "
                    "keep one image member per key"
                )
            images[key] = name
        elif ext in ("cls", "json"):
            meta.setdefault(key, {})[ext] = name
    return {key: (image, meta.get(key, {})) for key, image in images.items()}


def _fields(image: str, meta: dict[str, str], desc: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "json" in meta:
        try:
            obj = json.loads(meta["json"])
        except ValueError as exc:
            raise SourceError(f"{desc}: the .json of '{image}' is not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise SourceError(f"{desc}: the .json of '{image}' must be an object, got {obj!r}")
        if "label" in obj and "labels" in obj:
            raise SourceError(
                f"{desc}: the .json of '{image}' has both 'label' and 'labels'; use 'label' for "
                "one class, 'labels' for multilabel"
            )
        out = {k: obj[k] for k in ("label", "labels", "split", "group") if k in obj}
    if "cls" in meta:
        out.pop("labels", None)
        out["label"] = meta["cls"].strip()
    if "label" not in out and "labels" not in out:
        raise SourceError(
            f"{desc}: the .json of '{image}' has no 'label' or 'labels' (keys: "
            f'{sorted(out)}); give the class as "label" or a <key>.cls member'
        )
    return out


def _labels(
    fields: list[dict[str, Any]],
    ids: Sequence[str],
    class_names: Sequence[str] | None,
    task: str | None,
    desc: str,
) -> tuple[np.ndarray, list[str], str]:
    kinds = {"labels" in f for f in fields}
    if len(kinds) > 1:
        raise SourceError(f"{desc}: some samples have 'label' and others 'labels'; use one")
    if kinds == {True}:
        return (*_multilabel([f["labels"] for f in fields], ids, class_names, desc), "")
    values = ["" if f["label"] is None else str(f["label"]).strip() for f in fields]
    return read_labels(
        values, class_names=class_names, task=task, where=desc, what="",
        rows=lambda picked: _samples(ids, picked),
    )  # fmt: skip


def _samples(ids: Sequence[str], picked: Sequence[int], limit: int = 5) -> str:
    """ "sample 'a/1.png'" / "samples 'a/1.png', 'b/2.png' and 3 more"."""
    shown = ", ".join(f"'{ids[i]}'" for i in picked[:limit])
    more = f" and {len(picked) - limit} more" if len(picked) > limit else ""
    return f"sample{'s' if len(picked) > 1 else ''} {shown}{more}"


def _not_a_class(value: Any) -> bool:
    """None, or a float that is not a whole number (NaN, infinities, 0.5)."""
    return value is None or (isinstance(value, float) and type(parse_int(str(value))) is not int)


def _name(value: Any) -> str:
    """A class present in a multilabel list: a JSON number 3 or 3.0 is class "3"; text as is."""
    return (
        str(int(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else str(value)
    )


def _multilabel(
    lists: list[Any], ids: Sequence[str], class_names: Sequence[str] | None, desc: str
) -> tuple[np.ndarray, list[str]]:
    if not all(isinstance(x, list) for x in lists):
        raise SourceError(f"{desc}: 'labels' must be a list (names present, or 0/1 per class)")
    widths = {len(x) for x in lists}
    if len(widths) == 1 and all(type(v) in (int, float) and v in (0, 1) for x in lists for v in x):
        width = widths.pop()  # a 0/1 vector per sample, all of one length
        names = list(class_names) if class_names else [f"label_{i}" for i in range(width)]
        return np.asarray(lists, dtype=np.uint8).reshape(len(lists), width), names
    odd = [i for i, x in enumerate(lists) if any(_not_a_class(v) for v in x)]
    if odd:
        raise SourceError(
            f"{desc}: 'labels' of {_samples(ids, odd)} hold {lists[odd[0]]!r}; a multilabel "
            "list holds the class names (or whole-number ids) present, or 0/1 per class, never "
            "NaN, infinities, fractions or null: fix those samples' .json"
        )
    found = sorted({_name(v) for x in lists for v in x})
    numbers = [parse_int(v) for v in found]
    ints = [n for n in numbers if isinstance(n, int)]
    if len(ints) == len(found):  # integer ids: ascending numeric order (ties: as sorted above)
        found = [v for _, v in sorted(zip(ints, found, strict=True), key=lambda p: p[0])]
    names = list(class_names) if class_names else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise SourceError(f"{desc}: labels {unknown[:5]} are not among the class names {names}")
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(lists), len(names)), dtype=np.uint8)
    for i, x in enumerate(lists):
        out[i, [index[_name(v)] for v in x]] = 1
    return out, names


def _optional(fields: list[dict[str, Any]], name: str, desc: str) -> list[str] | None:
    has = [name in f for f in fields]
    if not any(has):
        return None
    if not all(has):
        raise SourceError(
            f"{desc}: {has.count(False)} of {len(has)} samples have no '{name}' in their .json; "
            f"give every sample a '{name}' or none"
        )
    return [str(f[name]) for f in fields]


def meta_fields(
    metas: list[dict[str, str]], ids: list[str], columns: Sequence[str], desc: str
) -> dict[str, np.ndarray]:
    """``--meta-column`` values from each sample's ``<key>.json`` object, as text."""
    out: dict[str, np.ndarray] = {}
    for column in columns:
        values = []
        for i, m in enumerate(metas):
            obj = json.loads(m["json"]) if m.get("json") else {}
            if not isinstance(obj, dict) or column not in obj:
                raise SourceError(
                    f"{desc}: sample '{ids[i]}' has no '{column}' in its <key>.json (--meta-column "
                    f"{column}); every sample needs the attribute in its .json object"
                )
            values.append(str(obj[column]))
        out[column] = np.asarray(values, dtype=str)
    return out

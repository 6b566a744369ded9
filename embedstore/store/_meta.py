"""Per-sample attributes beside a dataset's labels (site, scanner, sex, age bin), for audits.

Each attribute column ``COL`` of a dataset is one array ``<dataset>/meta.<COL>`` of shape
(N, L) uint8: the values as text, UTF-8, zero-padded to the longest (the encoding of ids and
groups, a Zarr v3 core data type; integers are stored as their decimal text). Rows are aligned
with the dataset's ids. Arrays, not a subgroup: every subgroup of a dataset is a backbone.

Writing the same column again with the same values changes nothing; different values replace it
(attributes are not part of a dataset's identity: no backbone array depends on them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.store._access import array, subgroup, values
from embedstore.store._guard import reading, writing
from embedstore.store._layout import compressor
from embedstore.store._strings import TEXT_ENCODING, decode_text, encode_text
from embedstore.store._validate import META_PREFIX

if TYPE_CHECKING:
    from embedstore.store._store import Store

__all__ = ["META_PREFIX", "meta_names", "read_meta", "require_meta", "write_meta"]


def _check_column(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name.strip() != name:
        raise InvalidDataError(
            f"an attribute column name must be non-empty text without '/', leading dots or "
            f"surrounding spaces; got {name!r}"
        )


def write_meta(store: Store, dataset: str, meta: Mapping[str, Sequence[str] | np.ndarray]) -> None:
    """Store attribute columns ``{name: (N,) values}`` of ``dataset`` (values as text)."""
    store._check_writable()
    n = store.dataset_info(dataset).n_samples
    encoded = {}
    for name, given in meta.items():
        _check_column(name)
        column = np.asarray(given).astype(str)
        if column.shape != (n,):
            raise InvalidDataError(
                f"attribute column '{name}' must have one value per sample, shape ({n},); "
                f"got shape {column.shape}"
            )
        encoded[name] = encode_text(column.tolist(), f"attribute column '{name}'")
    g = subgroup(store.zarr_group, dataset)
    with writing(store.location, f"the attribute columns of '{dataset}'", resumable=False):
        for name, value in encoded.items():
            key = META_PREFIX + name
            if key in g.array_keys():
                old = array(g, key)
                if old.shape == value.shape and np.array_equal(values(old, ...), value):
                    continue
                del g[key]
            arr = g.create_array(
                key,
                shape=value.shape,
                dtype=np.uint8,
                compressors=compressor(),
                dimension_names=("sample", f"{name}_utf8"),
                fill_value=0,
            )
            arr[...] = value
            arr.attrs["encoding"] = TEXT_ENCODING


def meta_names(store: Store, dataset: str) -> list[str]:
    """The attribute columns stored for ``dataset``, sorted."""
    g = store._dataset_group(dataset)
    with reading(store.location, f"the attribute columns of '{dataset}'"):
        keys = [k for k in g.array_keys() if k.startswith(META_PREFIX)]
    return sorted(k[len(META_PREFIX) :] for k in keys)


def require_meta(store: Store, dataset: str, names: Sequence[str]) -> None:
    """Raise for the first of ``names`` that ``dataset`` has no attribute column for."""
    known = meta_names(store, dataset)
    for name in names:
        if name not in known:
            raise InvalidDataError(
                f"dataset '{dataset}' has no attribute column '{name}' (stored: "
                f"{', '.join(known) or 'none'}); store one at extraction with "
                f"`embedstore extract ... --meta-column {name}` (CSV and tar sources)"
            )


def read_meta(store: Store, dataset: str, name: str) -> np.ndarray:
    """One attribute column of ``dataset`` as (N,) str; an unknown name lists the stored ones."""
    require_meta(store, dataset, [name])
    g = store._dataset_group(dataset)
    with reading(store.location, f"attribute column '{name}' of '{dataset}'"):
        return decode_text(values(array(g, META_PREFIX + name), ...))

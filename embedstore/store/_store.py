"""The :class:`Store`: datasets (ids, labels, splits, groups) and reads of embeddings."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr

from embedstore.errors import (
    ArrayNotFoundError,
    CorruptStoreError,
    DatasetNotFoundError,
    IncompleteArrayError,
    InvalidDataError,
    ReadOnlyError,
)
from embedstore.store._access import array, subgroup, values
from embedstore.store._checks import check_backbone_arrays, check_embeddings_readable
from embedstore.store._create import (
    backbone_groups,
    check_numerics,
    check_resumable,
    create_group,
    drop_group,
    has_group,
    marked_group,
)
from embedstore.store._dataset_write import gone_arrays, remove_metadata_orphans, write_dataset
from embedstore.store._fastread import read_float32
from embedstore.store._guard import reading, writing
from embedstore.store._info import (
    ArrayInfo,
    DatasetInfo,
    block,
    child_group,
    chunk_rows_for,
    nbytes_stored,
)
from embedstore.store._layout import (
    FORMAT_VERSION,
    BackboneAttrs,
    DatasetAttrs,
    RootAttrs,
    create_backbone_arrays,
    migrate,
    needs_migration,
)
from embedstore.store._nodes import AuditedNodes, check_root, root_version
from embedstore.store._rawmeta import RawMeta
from embedstore.store._rows import PerRowReads, Rows, take
from embedstore.store._validate import EMBEDDING_DTYPES, SPLIT_CODES, _check_name, _validate_dataset
from embedstore.store._writer import EmbeddingWriter, rows_done


class Store(AuditedNodes, PerRowReads):
    """An embedstore store. Make one with :func:`create_store` or :func:`open_store`."""

    def __init__(self, root: zarr.Group, location: str, *, read_only: bool) -> None:
        self._root = root
        self.location = location
        self.read_only = read_only
        self._meta = RawMeta(root)
        check_root(self._meta(""), location)
        root_attrs = RootAttrs.of(root)
        version = root_version(root_attrs, location)
        if not read_only and needs_migration(root):
            with writing(location, "the format 2 migration", resumable=False):
                migrate(root)
            version = FORMAT_VERSION
        self.format_version = version
        self.created_by = root_attrs.created_by or "unknown"

    def __repr__(self) -> str:
        mode = "r" if self.read_only else "r+"
        return f"Store({self.location!r}, mode={mode!r})"

    # ----------------------------------------------------------------- datasets

    def datasets(self) -> list[str]:
        """Names of the datasets in the store, sorted (a dataset whose writing was interrupted
        before its attributes were written is not one yet: writing it again completes it)."""
        names = self._meta.children("")
        if names is not None:  # from the raw metadata: a damaged dataset is listed (and refused)
            return [n for n in names if self._is_dataset(n)]
        with reading(self.location, "the store's datasets"):
            return sorted(k for k, g in self._root.groups() if "n_samples" in g.attrs)

    def _dataset_group(self, name: str) -> zarr.Group:
        self._audit_dataset(name)
        g = child_group(self._root, name, "n_samples")  # one metadata read (cheap on s3://)
        if g is not None:
            return g
        if name not in self.datasets():
            known = ", ".join(self.datasets()) or "none"
            raise DatasetNotFoundError(
                f"dataset '{name}' is not in store '{self.location}' (datasets: {known}); "
                "see `embedstore ls STORE`"
            )
        return subgroup(self._root, name)

    def dataset_info(self, name: str) -> DatasetInfo:
        """Summary of one dataset."""
        g = self._dataset_group(name)
        attrs = DatasetAttrs.of(g)
        present = self._data_arrays(name)
        gone = gone_arrays(g, present)
        if gone:
            raise CorruptStoreError(
                f"dataset '{name}' in store '{self.location}' is damaged: its "
                f"{', '.join(repr(k) for k in gone)} array(s) are gone (no zarr.json). "
                f"`embedstore verify {self.location}` lists every damage; extract it again with "
                "--overwrite (its backbone arrays are kept when the ids are unchanged) or import "
                "a good copy"
            )
        split = self.split(name)
        counts = {s: int((split == code).sum()) for s, code in SPLIT_CODES.items()}
        return DatasetInfo(
            name=name,
            task=attrs.task,
            class_names=attrs.class_names,
            n_samples=attrs.n,
            split_counts=counts,
            has_group="group" in present,
            source=attrs.source,
            backbones=tuple(self.backbones(name)),
        )

    def add_dataset(
        self,
        name: str,
        *,
        ids: Sequence[str] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        split: Sequence[int] | Sequence[str] | np.ndarray,
        task: str,
        class_names: Sequence[str],
        group: Sequence[str] | np.ndarray | None = None,
        source: str = "",
        overwrite: bool = False,
    ) -> DatasetInfo:
        """Write a dataset's ids, labels and splits once.

        Writing the same content again is a no-op; different content raises
        :class:`ConflictError` unless ``overwrite``. Overwriting keeps the backbones only when the
        ids are unchanged (rows must stay aligned); otherwise delete the dataset first.

        Args:
            ids: array of shape (n_samples,), unique non-empty strings.
            labels: (n_samples,) class indices, or (n_samples, n_classes) 0/1 for multilabel.
            split: (n_samples,) codes 0/1/2 or names 'train'/'val'/'test'.
            task: one of binary, multiclass, multilabel, ordinal.
            class_names: one name per class (per label for multilabel).
            group: optional (n_samples,) patient / group ids.
        """
        self._check_writable()
        _check_name(name, "dataset")
        data = _validate_dataset(ids, labels, split, task, class_names, group)
        attrs = {
            "task": task,
            "class_names": list(map(str, class_names)),
            "source": source,
            "n_samples": int(np.asarray(data["ids"]).shape[0]),
            "split_codes": SPLIT_CODES,
        }
        with writing(self.location, f"dataset '{name}'", resumable=False):
            write_dataset(self, name, data, attrs, overwrite=overwrite)
        return self.dataset_info(name)

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset and every backbone array under it (hidden first: a kill midway
        leaves a dataset that is not listed and that the next ``add_dataset`` replaces)."""
        self._check_writable()
        g = self._dataset_group(name)
        with writing(self.location, f"the deletion of dataset '{name}'", resumable=False):
            g.attrs.put({k: v for k, v in g.attrs.asdict().items() if k != "n_samples"})
            del self._root[name]

    # ----------------------------------------------------------------- embeddings

    def backbones(self, dataset: str) -> list[str]:
        """Backbones with an embeddings array (complete or not) for a dataset, sorted."""
        g = self._dataset_group(dataset)
        with reading(self.location, f"the backbones of '{dataset}'"):
            return self._backbone_lists(g, dataset)[0]

    def interrupted_backbones(self, dataset: str) -> list[str]:
        """Backbones whose array creation was interrupted before any row was written, sorted:
        not backbones yet; the next ``extract`` of one recreates it."""
        g = self._dataset_group(dataset)
        with reading(self.location, f"the backbones of '{dataset}'"):
            return self._backbone_lists(g, dataset)[1]

    def _backbone_group(self, dataset: str, backbone: str) -> zarr.Group:
        g = self._dataset_group(dataset)
        self._audit_backbone(dataset, backbone)
        with reading(self.location, f"'{dataset}/{backbone}'"):
            bg = marked_group(g, backbone)
        if bg is not None:
            return bg
        extracted, interrupted = backbone_groups(g)
        if backbone in interrupted:
            raise ArrayNotFoundError(
                f"the '{backbone}' array of dataset '{dataset}' holds nothing yet: its creation "
                f"was interrupted; run the same `embedstore extract STORE --dataset {dataset} "
                f"--backbone {backbone} ...` again (it recreates the array)"
            )
        close = difflib.get_close_matches(backbone, extracted, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ArrayNotFoundError(
            f"backbone '{backbone}' has not been extracted for dataset '{dataset}'; {hint}"
            f"(extracted: {', '.join(extracted) or 'none'}); run `embedstore extract STORE "
            f"--dataset {dataset} --backbone {backbone} ...`"
        )

    def array_info(self, dataset: str, backbone: str) -> ArrayInfo:
        """Shape, dtype, bytes on disk, completeness and provenance of one embeddings array."""
        bg = self._backbone_group(dataset, backbone)
        with reading(self.location, f"'{dataset}/{backbone}'"):
            keys = check_backbone_arrays(bg, self.location, f"{dataset}/{backbone}")
            arr = array(bg, "embeddings")
            attrs = BackboneAttrs.of(bg)
            nbytes = nbytes_stored(bg)
            return ArrayInfo(
                dataset=dataset,
                backbone=backbone,
                shape=(int(arr.shape[0]), int(arr.shape[1])),
                dtype=str(arr.dtype).lower().replace("dtype", "").strip("()'\""),
                chunk_rows=int(arr.chunks[0]),
                nbytes_stored=int(nbytes),
                complete=bool(attrs.complete),
                rows_written=int(arr.shape[0]) if attrs.complete else rows_done(bg),
                n_missing=int(values(array(bg, "missing")).sum()),
                provenance=attrs.provenance,
                chunk_checksums={"checksums", "chunk_nbytes"} <= keys,
                numerics=attrs.numerics or {},
            )

    def chunks_done(self, dataset: str, backbone: str) -> np.ndarray:
        """Per chunk of an embeddings array, whether its rows are on disk: (n_chunks,) bool.

        Chunk ``i`` holds rows ``[i * chunk_rows, (i + 1) * chunk_rows)``; see :meth:`array_info`.
        """
        bg = self._backbone_group(dataset, backbone)
        with reading(self.location, f"'{dataset}/{backbone}/progress'"):
            check_backbone_arrays(bg, self.location, f"{dataset}/{backbone}")
            progress = array(bg, "progress")
            if BackboneAttrs.of(bg).complete:
                return np.ones(progress.shape[0], dtype=bool)
            return values(progress).astype(bool)

    def embeddings(
        self,
        dataset: str,
        backbone: str,
        *,
        rows: Rows = None,
        split: str | None = None,
        allow_incomplete: bool = False,
    ) -> np.ndarray:
        """Read embeddings as float32, array of shape (n_rows, dim), without reading other arrays.

        Args:
            rows: row indices (ints, any order, repeats allowed) or a slice; default all rows.
            split: read only the rows of this split ('train', 'val', 'test'); exclusive with rows.
            allow_incomplete: read an array that was never marked complete (its unwritten rows
                are zeros).

        Rows recorded as missing (unreadable images) are returned as zeros; use
        :meth:`valid_rows` to exclude them. A complete array is checked cheaply before it is
        read (shape, every chunk done and present); a damaged chunk raises
        :class:`CorruptStoreError`.
        """
        bg = self._backbone_group(dataset, backbone)
        what = f"embeddings of '{backbone}' for '{dataset}'"
        with reading(self.location, what):
            keys = check_backbone_arrays(bg, self.location, f"{dataset}/{backbone}")
            complete = bool(BackboneAttrs.of(bg).complete)
            arr = array(bg, "embeddings")
            if not allow_incomplete and not complete:
                written = rows_done(bg)
                raise IncompleteArrayError(
                    f"{what} are incomplete ({written} of {arr.shape[0]} rows "
                    "written); rerun the same `embedstore extract` command to resume it"
                )
            if complete:
                n = DatasetAttrs.of(subgroup(self._root, dataset)).n
                check_embeddings_readable(bg, n, self.location, f"{dataset}/{backbone}", keys)
        sel = self._selection(dataset, rows, split)
        with reading(self.location, what):
            fast = read_float32(arr, sel)
            return fast if fast is not None else np.asarray(take(arr, sel), dtype=np.float32)

    def writer(
        self,
        dataset: str,
        backbone: str,
        *,
        dim: int,
        dtype: str = "float16",
        chunk_rows: int | None = None,
        overwrite: bool = False,
        rows: tuple[int, int] | None = None,
        numerics: dict[str, Any] | None = None,
    ) -> EmbeddingWriter:
        """Open a writer for one backbone's embeddings, creating or resuming the array.

        An incomplete array of the same shape and dtype is resumed from its last fully written
        chunk (``writer.rows_written``). A complete array raises :class:`ConflictError` unless
        ``overwrite``, which deletes it first.

        Args:
            dim: embedding width D.
            dtype: 'float16' or 'float32', chosen per array.
            chunk_rows: rows per chunk, the resume granularity; default ~4 MiB chunks, at least 8
                when the dataset allows (:func:`default_chunk_rows`).
            rows: (start, stop), a chunk-aligned block for this writer alone, so that several
                processes can fill one array at once (create the array first, e.g. from rank 0
                with ``rows=(0, 0 + chunk_rows)`` or a plain call, then open one block each).
                Default: all rows.
            numerics: what determines the bits (threads, device, dtype, autocast, torch ...),
                recorded when the array is created; resuming under another is refused.
        """
        self._check_writable()
        _check_name(backbone, "backbone")
        if dtype not in EMBEDDING_DTYPES:
            raise InvalidDataError(
                f"embedding dtype must be one of {', '.join(EMBEDDING_DTYPES)}, got '{dtype}'"
            )
        if int(dim) <= 0:
            raise InvalidDataError(f"embedding dim must be positive, got {dim}")
        g = self._dataset_group(dataset)
        n = DatasetAttrs.of(g).n
        with writing(self.location, f"the '{backbone}' array of '{dataset}'"):
            self._drop_if_damaged(dataset, backbone, overwrite)
            if has_group(g, backbone):
                if overwrite or marked_group(g, backbone) is None:
                    drop_group(g, backbone)  # or its creation was interrupted: start it again
                else:
                    info = self.array_info(dataset, backbone)  # damage raises: --overwrite
                    check_resumable(info, (n, dim), dtype)
                    bg = subgroup(g, backbone)
                    check_numerics(
                        BackboneAttrs.of(bg).numerics, numerics, f"'{backbone}' for '{dataset}'"
                    )
                    if rows is None:  # not one of several block writers: the group is ours
                        remove_metadata_orphans(self._root, f"{dataset}/{backbone}")
                    return EmbeddingWriter(bg, dim=dim, location=self.location, **block(rows))
            rows_per_chunk = chunk_rows_for(n, dim, dtype, chunk_rows)
            bg = create_group(
                g,
                backbone,
                lambda bg: create_backbone_arrays(bg, n, dim, dtype, rows_per_chunk),
                {"numerics": numerics} if numerics else None,
            )
            return EmbeddingWriter(bg, dim=dim, location=self.location, **block(rows))

    def add_embeddings(
        self, dataset: str, name: str, X, ids=None, provenance=None, **options
    ) -> ArrayInfo:
        """Import embeddings computed elsewhere: ``X`` of shape (n, dim) (or a reader of
        :mod:`embedstore.interop`), rows matched to the dataset's ``ids`` in any order, written
        chunked, checksummed and resumable, with provenance ``computed_by: "external"``.

        Options (see :func:`embedstore.store.add.add_embeddings`): ``allow_missing``, ``dtype``,
        ``chunk_rows``, ``overwrite``, ``dataset_fields`` (create the dataset), ``progress``.
        """
        from embedstore.store.add import ArrayRows, add_embeddings

        src = X if hasattr(X, "blocks") else ArrayRows(X, ids)
        return add_embeddings(self, dataset, name, src, provenance=provenance, **options)

    def delete_embeddings(self, dataset: str, backbone: str) -> None:
        """Remove one backbone's embeddings for a dataset."""
        self._check_writable()
        self._backbone_group(dataset, backbone)
        with writing(self.location, f"the deletion of '{dataset}/{backbone}'", resumable=False):
            drop_group(subgroup(self._root, dataset), backbone)

    # ----------------------------------------------------------------- internals

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"store '{self.location}' is open read-only; open it with mode='r+' "
                "(archives and remote stores are always read-only: import them first)"
            )

    @property
    def zarr_group(self) -> zarr.Group:
        """The underlying root zarr group (for the archive module)."""
        return self._root

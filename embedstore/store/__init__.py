"""The embedding store: a Zarr v3 group holding datasets and, per dataset, one array per backbone.

Layout (documented for zarr-python users in the README)::

    <store>.zarr/                 attrs: embedstore_format, created_by
      <dataset>/                  attrs: task, class_names, source, n_samples, split_codes
        ids      (N,) str         unique sample ids
        labels   (N,) int64 | (N, C) uint8 for multilabel
        split    (N,) uint8       0 train, 1 val, 2 test
        group    (N,) str         optional patient / group ids
        <backbone>/               attrs: complete, provenance
          embeddings (N, D) float16 | float32, chunked by rows, zstd-compressed
          progress   (n_chunks,) uint8   1 once a chunk's rows are on disk (resume point)
          missing    (N,) bool           rows whose image could not be read (zeros in embeddings)
          missing_reason (N,) str        why, for those rows

Rows are aligned by sample across every backbone of a dataset. Only this package imports
zarr. The parts: ``_store`` (the :class:`Store`: datasets and reads), ``_writer``
(:class:`EmbeddingWriter`), ``_locations`` (folders, archives and URLs; :func:`create_store`,
:func:`open_store`), ``_validate`` (input checks and conversions), ``_layout`` (node attributes
as frozen dataclasses, array creation, migration). :mod:`embedstore.store.layout` is the public
interface to the layout as files (raw reads, chunk keys, digests, metadata rules) that
:mod:`embedstore.archive` uses; nothing else here is imported from outside the package.
"""

from __future__ import annotations

import warnings

from embedstore.store._info import ArrayInfo, DatasetInfo, default_chunk_rows
from embedstore.store._layout import FORMAT_VERSION
from embedstore.store._locations import create_store, open_store
from embedstore.store._lock import writer_lock
from embedstore.store._meta import meta_names, read_meta, require_meta, write_meta
from embedstore.store._store import Store
from embedstore.store._validate import EMBEDDING_DTYPES as EMBEDDING_DTYPES
from embedstore.store._validate import SPLIT_CODES, TASK_KINDS, is_data_array
from embedstore.store._writer import EmbeddingWriter

# A file zarr does not recognise in a store folder (e.g. the ``zarr.<uuid>.partial`` a killed
# writer left) makes zarr warn on every listing; what is damage, ``embedstore verify`` reports.
warnings.filterwarnings("ignore", message=".*is not recognized as a component of a Zarr hierarchy")

__all__ = [
    "FORMAT_VERSION",
    "SPLIT_CODES",
    "TASK_KINDS",
    "ArrayInfo",
    "DatasetInfo",
    "EmbeddingWriter",
    "Store",
    "create_store",
    "default_chunk_rows",
    "meta_names",
    "open_store",
    "read_meta",
    "require_meta",
    "write_meta",
    "writer_lock",
    "is_data_array",
]

"""The store's layout as files: what a reader that never goes through zarr may rely on.

This is the one interface through which :mod:`embedstore.archive` (``verify``, ``export``,
``import``) reads stores as files; nothing else of the store's private modules is used outside
the package. Documented in ``docs/store-format.md``.

Raw files
    :func:`open_raw` gives a :class:`RawStore` over a store folder, an archive (zip) or a URL:
    ``keys()`` (paths relative to the store root), ``read(key)`` (bytes exactly as stored), and
    ``close()``. It is the one reader of stored chunk files (the fast float32 read uses it too).
    :func:`is_remote` tells a URL from a local path; :func:`remote_storage_options` adds the S3
    endpoint from the environment. :data:`META` is the metadata file of every node.

Attributes and nodes
    :class:`RootAttrs`, :class:`DatasetAttrs` and :class:`BackboneAttrs` are a node's attributes
    parsed once (after :func:`node_problems` found them well typed). :func:`array`,
    :func:`subgroup` and :func:`values` read a :attr:`Store.zarr_group <embedstore.store.Store>`
    with the types the layout gives its nodes (zarr types every child as array-or-group).

Chunk keys
    :func:`chunk_coords` turns a key relative to its array (``c/3/0``) into grid coordinates
    (None: not a chunk key); :func:`row_chunk_keys` lists the keys of every row-chunk of an array.

Digests (checksum scheme :data:`CHECKSUM_SCHEME`, ``sha256-chunks-v1``)
    sha256 over an array's stored chunk files in grid order, each contributing
    ``key + b"\\0" + size (8 bytes, big-endian) + bytes``; :class:`Digest` accumulates it.
    :func:`metadata_sha256` is the sha256 of a node's metadata in canonical JSON (sorted keys, no
    spaces, ASCII), the digest recorded under ``metadata_sha256`` and in an archive's manifest.

Metadata rules (checked before zarr parses anything)
    :func:`metadata_problems` (plain Zarr v3, core data types, known codecs, sane shapes; a
    ``zarr.json`` at most :data:`MAX_ATTRIBUTE_BYTES`), :func:`node_problems` (plus the layout's
    attribute types), :func:`dataset_audit` / :func:`backbone_audit` (plus the digests recorded
    when written), :func:`shape_problems` (declared shapes against the layout and the chunks
    stored), :func:`chunk_nbytes` and :func:`zstd_declared_size` (a zstd frame's declared size
    against the chunk's, before decoding). :data:`GONE` is what a getter returns for a node
    without metadata; :func:`parse_metadata` parses a raw ``zarr.json``.

Member names
    :func:`member_name_problem` says why a key is not a plain relative store path;
    :func:`check_zip_members` checks a whole zip directory (names, links, compression).

Datasets and backbones
    :data:`DATA_ARRAYS`, :func:`iter_dataset_differences` (which fields two datasets differ in),
    :func:`backbone_problems` (layout problems of a backbone group), :func:`read_text` (the
    stored text arrays as strings), :func:`migrate_folder` (format 1 to 2 after an import).
"""

from __future__ import annotations

from embedstore.store._access import array, subgroup, values
from embedstore.store._audit import (
    GONE,
    backbone_audit,
    dataset_audit,
    metadata_sha256,
    node_problems,
)
from embedstore.store._audit import parse as parse_metadata
from embedstore.store._checks import chunk_keys as row_chunk_keys
from embedstore.store._checks import problems_of_embeddings as backbone_problems
from embedstore.store._integrity import CHECKSUM_SCHEME, Digest, chunk_coords
from embedstore.store._layout import (
    FORMAT_VERSION,
    BackboneAttrs,
    DatasetAttrs,
    RootAttrs,
    migrate_folder,
)
from embedstore.store._raw import (
    META,
    RawStore,
    is_remote,
    open_raw,
    remote_storage_options,
)
from embedstore.store._shapes import shape_problems
from embedstore.store._strings import read_text
from embedstore.store._validate import DATA_ARRAYS, EMBEDDING_DTYPES, iter_dataset_differences
from embedstore.store._zipcheck import (
    MAX_ATTRIBUTE_BYTES,
    check_zip_members,
    chunk_nbytes,
    member_name_problem,
    metadata_problems,
    zstd_declared_size,
)

__all__ = [
    "CHECKSUM_SCHEME",
    "DATA_ARRAYS",
    "EMBEDDING_DTYPES",
    "FORMAT_VERSION",
    "GONE",
    "MAX_ATTRIBUTE_BYTES",
    "META",
    "BackboneAttrs",
    "DatasetAttrs",
    "Digest",
    "RawStore",
    "RootAttrs",
    "backbone_audit",
    "backbone_problems",
    "check_zip_members",
    "chunk_coords",
    "chunk_nbytes",
    "dataset_audit",
    "is_remote",
    "iter_dataset_differences",
    "member_name_problem",
    "metadata_problems",
    "metadata_sha256",
    "migrate_folder",
    "node_problems",
    "open_raw",
    "parse_metadata",
    "read_text",
    "remote_storage_options",
    "row_chunk_keys",
    "shape_problems",
    "zstd_declared_size",
    "array",
    "subgroup",
    "values",
]

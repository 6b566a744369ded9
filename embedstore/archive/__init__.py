"""Sharing stores: export to one archive file, verify checksums and layout, import, merge.

An archive is a Zarr v3 zip store (``ZIP_STORED`` members, one per stored file of the store) that
:func:`embedstore.open_store` reads directly. Its root attributes hold the store's format version
and a manifest, ``attrs["embedstore_manifest"]``::

    {"manifest_version": 1, "checksum": "sha256-chunks-v1", "embedstore_version": "0.1.0",
     "embedstore_format": 1, "created_at": "...Z", "source": "...",
     "datasets": {"<dataset>": ["<backbone>", ...]},
     "nodes":  {"<node path>": {"metadata_sha256": "..."}},          # every group and array
     "arrays": {"<array path>": {"sha256": "...", "n_chunks": int, "nbytes": int,
                                 "shape": [...], "dtype": "...", "chunk_shape": [...]}}}

Checksums (``sha256-chunks-v1``):

- ``arrays[p]["sha256"]`` is the sha256 of the array's stored chunk files, exactly as stored
  (compressed), taken in chunk-grid order (integer chunk coordinates, row-major; the key
  ``c/10/0`` comes after ``c/9/0``). Each chunk contributes ``key + b"\\0" + size + bytes``, where
  ``key`` is its path relative to the array (``c/3/0``, UTF-8) and ``size`` its length as 8 bytes
  big-endian, so moving, dropping or renaming a chunk changes the digest. Chunks never written
  (all fill value) are absent and contribute nothing.
- ``nodes[p]["metadata_sha256"]`` is the sha256 of the node's ``zarr.json`` as canonical JSON
  (``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``): it covers
  shape, dtype, codecs and attributes (labels' class names, provenance), independent of
  formatting. The root node, which holds the manifest itself, is not covered.

Safety: member names are checked before anything is read (no absolute paths, ``..``, backslashes,
control characters or hidden parts); only Zarr v3 metadata with numeric/bool/string dtypes and
a fixed list of codecs is accepted, so nothing from an archive is ever unpickled or executed.
This package reads stored files as bytes, through the store's one documented layout interface
:mod:`embedstore.store.layout` (raw reads, chunk keys, digests, metadata rules, member names);
decoding goes through :mod:`embedstore.store`. The parts: ``_members`` (member-name errors, an
archive's own sha256), ``_checksums`` (array digests over a raw store, the manifest check), ``_verify``, ``_export``, ``_import`` (import, merge) and
``_staging`` (the staging folder of an import, and cleaning up those that killed imports left).
"""

from __future__ import annotations

# ON_CONFLICT (the CLI's choices), MANIFEST_VERSION and check_member_name are importable from here
# too, though not in __all__.
from embedstore.archive._checksums import CHECKSUM_SCHEME, MANIFEST_KEY, array_sha256
from embedstore.archive._checksums import MANIFEST_VERSION as MANIFEST_VERSION
from embedstore.archive._export import ExportResult, export_archive
from embedstore.archive._import import ON_CONFLICT as ON_CONFLICT
from embedstore.archive._import import ImportResult, import_archive, merge_stores
from embedstore.archive._members import check_member_name as check_member_name
from embedstore.archive._verify import GUARANTEE, ArrayCheck, VerifyReport, verify

__all__ = [
    "CHECKSUM_SCHEME",
    "GUARANTEE",
    "MANIFEST_KEY",
    "ArrayCheck",
    "ExportResult",
    "ImportResult",
    "VerifyReport",
    "array_sha256",
    "export_archive",
    "import_archive",
    "merge_stores",
    "verify",
]

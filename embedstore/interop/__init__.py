"""Bring your own embeddings, take them anywhere: readers and writers of other tools' formats.

- :func:`open_embeddings` opens a file or folder as a row source (ids + an (n, dim) array read
  in blocks): ``.npy`` (+ ids file), ``.npz``, HDF5 (one file, or a folder of one ``.h5`` per
  sample), Parquet, or kaiko-ai/eva's offline layout (``manifest.csv`` + one ``.pt`` per row).
- :func:`add_file` imports one into a store (``embedstore add``), optionally creating the
  dataset from a table of ids, labels, split and group (or from eva's manifest).
- :func:`export_features` writes a dataset's ids, labels, splits, groups and chosen arrays as
  Parquet, ``.npz`` or HDF5 (``embedstore export-features``).

The exact keys and columns each format reads are listed in ``docs/bring-your-own-embeddings.md``.
"""

from __future__ import annotations

from pathlib import Path

from embedstore.interop._formats import FORMATS, guess_format, open_embeddings

__all__ = ["FORMATS", "add_file", "export_features", "guess_format", "open_embeddings"]


def add_file(store, dataset: str, name: str, path: str | Path, **options):
    """Import embeddings from a file into ``store`` (see :func:`embedstore.interop._import.add_file`)."""
    from embedstore.interop._import import add_file as _add

    return _add(store, dataset, name, path, **options)


def export_features(store, dataset: str, out: str | Path, **options):
    """Write a dataset's table and arrays to Parquet, .npz or HDF5 (see ``_export``)."""
    from embedstore.interop._export import export_features as _export

    return _export(store, dataset, out, **options)

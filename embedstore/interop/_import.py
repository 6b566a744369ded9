"""``embedstore add``: one file of embeddings into a store, and the dataset from a table if asked.

A dataset without images is made from a CSV table of ids, labels, optional split and group, read
by the same :class:`~embedstore.data.manifest.CsvSource` that ``extract`` uses for manifests (its
rules and messages: one label column of class names or integers, or several 0/1 columns; split
values train / val / test or stratified splits made with ``seed``; groups never in two splits).
Nothing is written until the table and the embeddings agree (see :mod:`embedstore.store.add`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from embedstore._version import __version__
from embedstore.errors import InvalidDataError
from embedstore.interop._formats import guess_format, open_embeddings


def table_fields(
    table: str | Path,
    *,
    id_column: str = "id",
    label_columns: Sequence[str] | None = None,
    split_column: str | None = None,
    group_column: str | None = None,
    class_names: str | Sequence[str] | None = None,
    task: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """``Store.add_dataset`` keyword arguments from a CSV of ids, labels, split and group."""
    from embedstore.data.base import parse_class_names
    from embedstore.data.manifest import CsvSource

    src = CsvSource(
        table,
        path_column=id_column,
        label_columns=list(label_columns or ["label"]),
        split_column=split_column,
        group_column=group_column,
        class_names=parse_class_names(class_names),
        task=task,
        seed=seed,
        allow_missing=True,  # the ids name samples, not files to read
    )
    fields = src.dataset_fields()
    fields["source"] = f"table of ids without images: {fields['source']}"
    return fields


def add_file(
    store,
    dataset: str,
    name: str,
    path: str | Path,
    *,
    format: str | None = None,
    ids: Any = None,
    id_column: str | None = None,
    key: str | None = None,
    ids_key: str | None = None,
    allow_missing: bool = False,
    model_name: str | None = None,
    note: str | None = None,
    dtype: str | None = None,
    chunk_rows: int | None = None,
    overwrite: bool = False,
    table: str | Path | None = None,
    table_options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """Import ``path`` as backbone ``name`` of ``dataset``; returns the array's ``ArrayInfo``.

    Args:
        store: a :class:`Store` open for writing, or a local path (created if absent).
        table: a CSV of ids and labels to create the dataset from (``table_options``: the keyword
            arguments of :func:`table_fields`). For eva's layout the manifest is the table when
            the dataset does not exist yet (``origin`` ids, ``target`` labels, ``split``).
        model_name, note: who made the embeddings and how, as the user says; recorded.
    """
    from embedstore.store import Store, create_store

    fmt = guess_format(path, format)
    with open_embeddings(
        path, format=fmt, ids=ids, id_column=id_column, key=key, ids_key=ids_key
    ) as rows:
        fields = None
        exists = isinstance(store, Store) or (Path(str(store)) / "zarr.json").is_file()
        s = store if isinstance(store, Store) else None
        if s is None and exists:
            s = create_store(store)  # opens the existing store for writing
        known = s is not None and dataset in s.datasets()
        if table is not None:
            fields = table_fields(table, **(table_options or {}))
        elif fmt == "eva" and not known:
            fields = table_fields(
                rows.manifest, **{**rows.table_options(), **(table_options or {})}
            )
        if s is not None and not known and fields is None:
            names = ", ".join(s.datasets()) or "none"
            raise InvalidDataError(
                f"dataset '{dataset}' is not in store '{s.location}' (datasets: {names}); "
                "create it from a table of ids and labels with --labels TABLE.csv, or name an "
                "existing dataset with -d"
            )
        checked = None
        if s is None:  # a new store: every check first, so that a refusal leaves nothing behind
            from embedstore.store.add import check

            if fields is None:
                raise InvalidDataError(
                    f"store '{store}' does not exist, and a new store needs the dataset's table: "
                    "pass --labels TABLE.csv (ids, labels[, split, group]) or an eva folder"
                )
            checked = check(rows, fields["ids"], dataset, allow_missing, dtype)
            s = create_store(store)
        provenance = {
            "imported": {
                "file": str(Path(path).resolve()),
                "sha256": rows.sha256,
                "format": fmt,
                **({"key": key} if key else {}),
                **({"model_name": model_name} if model_name else {}),
                **({"note": note} if note else {}),
                "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "embedstore": __version__,
            },
        }
        return s.add_embeddings(
            dataset,
            name,
            rows,
            provenance=provenance,
            allow_missing=allow_missing,
            dtype=dtype,
            chunk_rows=chunk_rows,
            overwrite=overwrite,
            dataset_fields=fields,
            progress=progress,
            checked=checked,
        )

"""The exceptions embedstore raises: one root, subclasses that also inherit a builtin where one fits.

Every message says what was expected, what was received, and what to do.
"""

from __future__ import annotations

__all__ = [
    "EmbedstoreError",
    "StoreNotFoundError",
    "StoreExistsError",
    "FormatVersionError",
    "ReadOnlyError",
    "DatasetNotFoundError",
    "ArrayNotFoundError",
    "IncompleteArrayError",
    "ConflictError",
    "StoreBusyError",
    "RankFailedError",
    "InvalidDataError",
    "UnknownBackboneError",
    "WeightsNotFoundError",
    "ChecksumError",
    "CheckpointError",
    "BadImageError",
    "SourceError",
    "ProtocolError",
    "LabelsError",
    "NotFittedError",
    "ArchiveError",
    "MissingDependencyError",
    "StorageError",
    "CorruptStoreError",
    "CellFailedError",
]


class EmbedstoreError(Exception):
    """Root of every error embedstore raises on purpose; the CLI prints these without a traceback."""


class StoreNotFoundError(EmbedstoreError, FileNotFoundError):
    """No embedstore store at the given location."""


class StoreExistsError(EmbedstoreError, FileExistsError):
    """Something that is not an embedstore store is already at the location."""


class FormatVersionError(EmbedstoreError):
    """The store was written by a newer format than this code understands."""


class ReadOnlyError(EmbedstoreError, PermissionError):
    """A write was asked of a store opened read-only (archives and remote URLs are always read-only)."""


class DatasetNotFoundError(EmbedstoreError, LookupError):
    """The store has no dataset of that name."""


class ArrayNotFoundError(EmbedstoreError, LookupError):
    """The dataset has no embeddings for that backbone."""


class IncompleteArrayError(EmbedstoreError):
    """The embeddings array exists but was never marked complete."""


class ConflictError(EmbedstoreError):
    """Writing would change data already stored; nothing was overwritten."""


class StoreBusyError(ConflictError):
    """Another process (or torchrun job) is writing the same dataset or array right now."""


class RankFailedError(EmbedstoreError):
    """Another process (rank) of the same torchrun job failed, so this one stopped too."""


class InvalidDataError(EmbedstoreError, ValueError):
    """Input arrays have the wrong shape, type or values (NaN, duplicates, mismatched lengths)."""


class UnknownBackboneError(EmbedstoreError, LookupError):
    """A backbone name that is not in the registry."""


class WeightsNotFoundError(EmbedstoreError, FileNotFoundError):
    """A backbone's weights are neither given, cached, nor downloadable."""


class ChecksumError(EmbedstoreError):
    """A file or array does not match its recorded sha256."""


class CheckpointError(EmbedstoreError):
    """A checkpoint cannot be converted or loaded strictly into its architecture."""


class BadImageError(EmbedstoreError):
    """An image file cannot be read (unreadable, truncated, empty).

    ``reason`` says what is wrong with the file; the message adds ``hint``, what to do (by
    default: fix it, or skip it). Extraction reports ``reason`` with its own advice for a run.
    """

    HINT = "fix or remove the file, or pass --skip-bad (skip_bad=True) to record it as missing"

    def __init__(self, reason: str, hint: str = HINT) -> None:
        super().__init__(reason, hint)  # both in args: the error pickles to and from workers
        self.reason, self.hint = reason, hint

    def __str__(self) -> str:
        return f"{self.reason}; {self.hint}" if self.hint else self.reason


class SourceError(EmbedstoreError, ValueError):
    """An image source (folder, CSV manifest, .npz, demo) is malformed or missing."""


class ProtocolError(EmbedstoreError, ValueError):
    """An evaluation protocol cannot run on this data (too few samples, wrong task kind)."""


class LabelsError(ProtocolError):
    """Labels a classifier cannot learn from: fewer than two classes, or a binary task without two
    (a protocol that cannot run on these labels)."""


class NotFittedError(InvalidDataError):
    """An estimator was asked to predict before ``fit`` (the same class in every probe)."""


class ArchiveError(EmbedstoreError):
    """An archive is malformed, tampered with, or conflicts with its target."""


class MissingDependencyError(EmbedstoreError, ImportError):
    """An optional extra (e.g. matplotlib for plots) is needed and not installed."""


class StorageError(EmbedstoreError, OSError):
    """The disk or file system under a store failed a write (full disk, quota, permissions, I/O)."""


class CorruptStoreError(EmbedstoreError):
    """A store's files are damaged or break the layout rules (`embedstore verify` names each)."""


class CellFailedError(ProtocolError):
    """One evaluation cell cannot be computed on this data (e.g. a transform that is not finite
    on a handful of labelled rows). The runner records the cell as not computed, says why in one
    line naming the cell, and goes on with the other cells."""

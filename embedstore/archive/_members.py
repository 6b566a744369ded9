"""Member-name safety and whole-file digests of archives (raw reads: ``store.layout``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from embedstore.errors import ArchiveError
from embedstore.store.layout import member_name_problem


def check_member_name(name: str) -> None:
    """Refuse a stored key that could escape the target folder or is not a plain store path."""
    bad = member_name_problem(name)
    if bad:
        raise ArchiveError(
            f"archive member '{name}' is refused ({bad}); nothing was read or written. "
            "An embedstore archive holds only relative Zarr v3 keys such as 'dataset/ids/c/0'"
        )


def file_sha256(path: Path) -> str:
    """sha256 of a whole file (an archive), as `sha256sum` prints it."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(2**20):
            h.update(block)
    return h.hexdigest()

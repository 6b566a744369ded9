"""Finding WebDataset-style tar shards and indexing their members once, for random access.

Shards are named by a brace pattern (``images-{000000..000099}.tar``: ranges, zero-padded like
the bounds, and ``{a,b}`` lists, as WebDataset's ``braceexpand`` writes them), a glob
(``images-*.tar``), a folder holding ``.tar`` files, or a list of any of these.

The index of one shard is every regular member's name, data offset and size, plus the text of
its small label members (``.cls``, ``.json``). It is built with one sequential read of the shard
and cached as JSON under ``$EMBEDSTORE_CACHE/tar-index/`` (default
``$XDG_CACHE_HOME/embedstore`` or ``~/.cache/embedstore``), one file per shard, keyed by the
shard's absolute path, size and modification time: a shard that changes is indexed again, an
unchanged one never is. The cache is beside neither the shards (often read-only, shared) nor the
store; where it cannot be written the index is kept in memory for the run. Reading a row is then
one seek and one read of the member's bytes.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedstore.errors import SourceError

__all__ = ["ShardIndex", "cache_dir", "expand_braces", "index_shard", "shard_paths"]

INDEX_FORMAT = 1
META_EXTENSIONS = ("cls", "json")
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """``"a-{00..02}.tar"`` -> ``["a-00.tar", "a-01.tar", "a-02.tar"]``; ``{x,y}`` lists too."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body, head, tail = match.group(1), pattern[: match.start()], pattern[match.end() :]
    span = _RANGE.match(body)
    if span:
        lo, hi = span.group(1), span.group(2)
        width = max(len(lo), len(hi)) if (len(lo) > 1 and lo.startswith("0")) else 0
        step = 1 if int(hi) >= int(lo) else -1
        items = [str(i).zfill(width) for i in range(int(lo), int(hi) + step, step)]
    elif "," in body:
        items = body.split(",")
    else:
        items = ["{" + body + "}"]
    return [out for item in items for out in expand_braces(head + item + tail)]


def looks_like_shards(spec: str) -> bool:
    """True for a ``.tar`` path, a brace pattern or glob ending in ``.tar``."""
    return spec.lower().endswith(".tar") or spec.lower().endswith(".tar}")


def shard_paths(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Every shard a spec names, in order; an error lists the first few that do not exist."""
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    paths: list[Path] = []
    for item in items:
        text = str(item)
        if Path(text).is_dir():
            found = sorted(Path(text).glob("*.tar"))
            if not found:
                raise SourceError(f"folder '{text}' holds no .tar shards")
            paths += found
            continue
        for name in expand_braces(text):
            if any(c in name for c in "*?["):
                paths += [Path(p) for p in sorted(glob.glob(name))]
            else:
                paths.append(Path(name))
    if not paths:
        raise SourceError(f"no tar shards match '{spec}'")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SourceError(
            f"{len(missing)} of {len(paths)} tar shard(s) do not exist: {missing[:3]}"
            f"{' ...' if len(missing) > 3 else ''}; check the pattern (e.g. "
            "'images-{000000..000099}.tar' with the right first and last numbers)"
        )
    twice = sorted({str(p) for p in paths if paths.count(p) > 1})
    if twice:
        raise SourceError(f"tar shard(s) {twice[:3]} are named more than once")
    return paths


@dataclass(frozen=True)
class ShardIndex:
    """One shard's members: ``files[name] = (offset, size)`` of each regular member's data, and
    ``texts[name]`` the content of its .cls / .json members."""

    path: Path
    files: dict[str, tuple[int, int]]
    texts: dict[str, str]


def cache_dir() -> Path:
    """Where shard indexes are cached: ``$EMBEDSTORE_CACHE``, else ``$XDG_CACHE_HOME``
    /embedstore, else ``~/.cache/embedstore``; then ``tar-index/``."""
    root = os.environ.get("EMBEDSTORE_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "embedstore")
    return Path(root) / "tar-index"


def _cache_file(path: Path, stat: os.stat_result) -> Path:
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{INDEX_FORMAT}"
    return cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"


def _scan(path: Path) -> ShardIndex:
    files: dict[str, tuple[int, int]] = {}
    texts: dict[str, str] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                files[info.name] = (info.offset_data, info.size)
                ext = info.name.rsplit(".", 1)[-1].lower() if "." in info.name else ""
                if ext in META_EXTENSIONS:
                    handle = tar.extractfile(info)
                    data = handle.read() if handle is not None else b""
                    texts[info.name] = data.decode("utf-8", errors="replace")
    except tarfile.ReadError as exc:
        raise SourceError(
            f"'{path}' is not an uncompressed tar file ({exc}); shards are read at random, which "
            "needs plain .tar (decompress .tar.gz shards first, e.g. with gunzip)"
        ) from None
    except (OSError, EOFError) as exc:
        raise SourceError(f"cannot read tar shard '{path}' ({exc})") from None
    return ShardIndex(path, files, texts)


def index_shard(path: Path) -> ShardIndex:
    """The shard's index, from the cache when the shard is unchanged, else scanned (and cached)."""
    stat = path.stat()
    cached = _cache_file(path, stat)
    try:
        data = json.loads(cached.read_text())
        return ShardIndex(
            path, {k: (int(v[0]), int(v[1])) for k, v in data["files"].items()}, data["texts"]
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass  # not cached yet, or an unreadable cache file: scan again
    index = _scan(path)
    payload = {
        "format": INDEX_FORMAT,
        "shard": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "files": {k: list(v) for k, v in index.files.items()},
        "texts": index.texts,
    }
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{socket.gethostname()}.{os.getpid()}.tmp")  # ranks may race
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache: the index lives in memory for this run
    return index

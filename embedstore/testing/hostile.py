"""Hostile archives, built from a good one: names escaping the target, links, zip bombs, unsafe
metadata. Shared by tests/faults/test_faults_archive.py and benchmarks/bench_faults.py."""

from __future__ import annotations

import json
import stat
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embedstore import create_store
from embedstore.archive import export_archive

_EPOCH = (1980, 1, 1, 0, 0, 0)

# `python -c VERIFY_IMPORT_PEAK ARCHIVE TARGET`: verify, then import, an archive in a fresh process;
# prints whether verify passed, whether the import did, and the process's peak memory in bytes.
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking process.
VERIFY_IMPORT_PEAK = """
import sys
from embedstore.archive import import_archive, verify
from embedstore.errors import EmbedstoreError
report = verify(sys.argv[1])
try:
    import_archive(sys.argv[1], sys.argv[2])
    imported = True
except EmbedstoreError:
    imported = False
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(report.ok, imported, int(hwm.split()[1]) * 1024)
"""


def good_archive(tmp: Path) -> Path:
    """A small valid archive: one dataset of 40 rows, one complete 8-d backbone."""
    store = create_store(tmp / "good.zarr")
    n = 40
    store.add_dataset(
        "toy",
        ids=[f"img_{i:03d}.png" for i in range(n)],
        labels=np.arange(n) % 2,
        split=np.repeat([0, 1, 2], [24, 8, 8]),
        task="binary",
        class_names=["a", "b"],
    )
    w = store.writer("toy", "bb", dim=8, dtype="float32", chunk_rows=16)
    w.write(np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32))
    w.finish({"name": "bb"})
    export_archive(tmp / "good.zarr", tmp / "good.zip")
    return tmp / "good.zip"


def _rewrite(
    good: Path,
    out: Path,
    edit: Callable[[zipfile.ZipFile, list[tuple[zipfile.ZipInfo, bytes]]], None],
) -> Path:
    with zipfile.ZipFile(good) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for info, data in members:
            zf.writestr(info, data)
        edit(zf, members)
    return out


def _add(name: str, data: bytes = b"x", mode: int | None = None):
    def edit(zf, _members):
        info = zipfile.ZipInfo(name, date_time=_EPOCH)
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)

    return edit


def _bomb(zf: zipfile.ZipFile, _members, size: int = 256 * 2**20) -> None:
    """A real deflate stream of `size` zero bytes (about 1000:1), named like a chunk."""
    info = zipfile.ZipInfo("toy/bb/embeddings/c/9/0", date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as fh:
        block = bytes(2**20)
        for _ in range(size // len(block)):
            fh.write(block)


def _forged_bomb(zf: zipfile.ZipFile, _members) -> None:
    """A tiny deflated member whose directory entry claims 16 GiB."""
    info = zipfile.ZipInfo("toy/bb/embeddings/c/9/0", date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, zlib.compress(bytes(2**16)))
    zf.filelist[-1].file_size = 16 * 2**30


def _meta_edit(path: str, change: Callable[[dict], None]):
    """Replace one zarr.json with an edited copy (the archive otherwise as exported)."""

    def build(good: Path, out: Path) -> Path:
        with zipfile.ZipFile(good) as src:
            members = [(info, src.read(info)) for info in src.infolist()]
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
            for info, data in members:
                if info.filename == path:
                    meta = json.loads(data)
                    change(meta)
                    data = json.dumps(meta).encode()
                zf.writestr(info, data)
        return out

    return build


def _pickle_codec(meta: dict) -> None:
    meta["codecs"] = [{"name": "numcodecs.pickle", "configuration": {"protocol": 5}}]


def _object_dtype(meta: dict) -> None:
    meta["data_type"] = "object"


def _huge_shape(meta: dict) -> None:
    meta["shape"] = [10**12, 10**6]
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [10**9, 10**6]


def _huge_chunk(meta: dict) -> None:
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [2**24, 8]
    meta["shape"] = [2**24, 8]


HOSTILE: dict[str, Callable[[Path, Path], Path]] = {
    "name with ..": lambda g, o: _rewrite(g, o, _add("toy/../../evil.txt")),
    "absolute path": lambda g, o: _rewrite(g, o, _add("/tmp/evil.txt")),
    "backslashes": lambda g, o: _rewrite(g, o, _add("toy\\bb\\evil")),
    "drive letter": lambda g, o: _rewrite(g, o, _add("C:/evil.txt")),
    "symlink": lambda g, o: _rewrite(g, o, _add("toy/link", b"/etc/passwd", stat.S_IFLNK | 0o777)),
    "duplicate member": lambda g, o: _rewrite(g, o, _add("toy/ids/zarr.json", b"{}")),
    "zip bomb (256 MiB of zeros)": lambda g, o: _rewrite(g, o, _bomb),
    "zip bomb (forged 16 GiB size)": lambda g, o: _rewrite(g, o, _forged_bomb),
    "pickle codec": _meta_edit("toy/bb/embeddings/zarr.json", _pickle_codec),
    "object dtype": _meta_edit("toy/labels/zarr.json", _object_dtype),
    "huge shape": _meta_edit("toy/bb/embeddings/zarr.json", _huge_shape),
    "huge chunk": _meta_edit("toy/bb/embeddings/zarr.json", _huge_chunk),
}


def _declare(changes: dict[str, Callable[[dict], None]]):
    """Edit zarr.json files AND the manifest to match, so that only the shapes tell."""
    from embedstore.archive._checksums import MANIFEST_KEY
    from embedstore.store.layout import metadata_sha256 as _canonical_sha256

    def build(good: Path, out: Path) -> Path:
        with zipfile.ZipFile(good) as src:
            members = [(info, src.read(info)) for info in src.infolist()]
        metas = {i.filename: json.loads(d) for i, d in members if i.filename.endswith("zarr.json")}
        for path, change in changes.items():
            change(metas[path])
        manifest = metas["zarr.json"]["attributes"][MANIFEST_KEY]
        for path, meta in metas.items():
            node = path[: -len("zarr.json")].rstrip("/")
            if node in manifest["nodes"]:
                manifest["nodes"][node]["metadata_sha256"] = _canonical_sha256(meta)
            if node in manifest["arrays"]:
                manifest["arrays"][node]["shape"] = meta["shape"]
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
            for info, data in members:
                zf.writestr(info, json.dumps(metas[info.filename]).encode()
                            if info.filename in metas else data)  # fmt: skip
        return out

    return build


def _shape(shape: list[int], chunks: list[int] | None = None, dtype: str | None = None):
    def change(meta: dict) -> None:
        meta["shape"] = shape
        if chunks:
            meta["chunk_grid"]["configuration"]["chunk_shape"] = chunks
        if dtype:
            meta["data_type"] = dtype

    return change


def _n_samples(meta: dict) -> None:
    meta["attributes"]["n_samples"] = 10**9


_E = "toy/bb/embeddings/zarr.json"
# Archives whose metadata and manifest agree on a shape far beyond what the chunks hold.
DECLARED: dict[str, Callable[[Path, Path], Path]] = {
    "embeddings 1e9 columns": _declare({_E: _shape([40, 10**9])}),
    "embeddings 120 x 1e9 float16": _declare({_E: _shape([120, 10**9], dtype="float16")}),
    "embeddings one-row chunks": _declare({_E: _shape([40, 2**26], [1, 2**26])}),
    "embeddings 1e9 rows": _declare({_E: _shape([10**9, 8])}),
    "n_samples 1e9 everywhere": _declare(
        {
            "toy/zarr.json": _n_samples,
            "toy/ids/zarr.json": _shape([10**9, 16]),
            "toy/labels/zarr.json": _shape([10**9]),
            "toy/split/zarr.json": _shape([10**9]),
            _E: _shape([10**9, 8]),
            "toy/bb/missing/zarr.json": _shape([10**9]),
        }
    ),  # fmt: skip
    "labels 1e10": _declare({"toy/labels/zarr.json": _shape([10**10])}),
    "missing_reason 1e9 wide": _declare({"toy/bb/missing_reason/zarr.json": _shape([40, 10**9])}),
    "progress 1e10": _declare({"toy/bb/progress/zarr.json": _shape([10**10])}),
    "checksums 1e9 wide": _declare({"toy/bb/checksums/zarr.json": _shape([3, 10**9])}),
}


def make_declared(tmp: Path) -> dict[str, Path]:
    """Every archive of :data:`DECLARED`, written under ``tmp``."""
    good = good_archive(tmp)
    return {
        name: build(good, tmp / f"declared-{i:02d}.zip")
        for i, (name, build) in enumerate(DECLARED.items())
    }


def make_hostile(tmp: Path) -> dict[str, Path]:
    """Every hostile archive of :data:`HOSTILE`, written under ``tmp``."""
    good = good_archive(tmp)
    return {
        name: build(good, tmp / f"hostile-{i:02d}.zip")
        for i, (name, build) in enumerate(HOSTILE.items())
    }


def chunk_bomb(good: Path, out: Path, size: int = 64 * 2**20) -> Path:
    """An archive whose first embeddings chunk is a real zstd frame of `size` zero bytes (a few
    KiB stored) where the chunk holds 512: decoding it would allocate what the frame declares."""
    import numcodecs

    frame = bytes(numcodecs.Zstd(level=0, checksum=True).encode(np.zeros(size, np.uint8)))
    with zipfile.ZipFile(good) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for info, data in members:
            zf.writestr(info, frame if info.filename == "toy/bb/embeddings/c/0/0" else data)
    return out

"""WebDataset-style tar shards: the same rows, pixels and embeddings as the same images in a
folder; the member index is built once and cached; malformed shards are one clear error."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.data import ImageFolderSource, TarShardSource, open_source, read_dicom, tarindex
from embedstore.data.tarindex import expand_braces
from embedstore.errors import SourceError
from embedstore.extraction import extract
from tests.data.conftest import TINY, mixed_folder

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDSTORE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tar-index"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, out: Path, n_shards: int = 2, label="cls") -> list[Path]:
    """The folder's images, in the folder source's order, dealt into consecutive shards
    ``out/imgs-00000{i}.tar`` with a ``.cls`` (class name) or ``.json`` label per image."""
    files = [folder / i for i in ImageFolderSource(folder).ids]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    per = -(-len(files) // n_shards)
    for s in range(n_shards):
        path = out / f"imgs-{s:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for f in files[s * per : (s + 1) * per]:
                name = f.relative_to(folder).as_posix()
                key = name.rsplit(".", 1)[0]
                _add(tar, name, f.read_bytes())
                if label == "cls":
                    _add(tar, f"{key}.cls", f.parent.name.encode())
                else:
                    meta = {"label": f.parent.name, "split": "test" if "03" in name else "train"}
                    _add(tar, f"{key}.json", json.dumps({**meta, "group": key}).encode())
        paths.append(path)
    return paths


def test_brace_patterns_expand_like_webdataset():
    assert expand_braces("a-{000..002}.tar") == ["a-000.tar", "a-001.tar", "a-002.tar"]
    assert expand_braces("x-{09..11}.tar") == ["x-09.tar", "x-10.tar", "x-11.tar"]
    assert expand_braces("{a,b}-{1..2}") == ["a-1", "a-2", "b-1", "b-2"]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_shards_give_the_folder_rows_pixels_and_embeddings(tmp_path):
    folder = mixed_folder(tmp_path / "imgs")
    write_shards(folder, tmp_path / "shards")
    ref = ImageFolderSource(folder)
    src = open_source(str(tmp_path / "shards" / "imgs-{000000..000001}.tar"))
    assert isinstance(src, TarShardSource) and len(src) == 12
    assert src.ids.tolist() == ref.ids.tolist() and src.class_names == ref.class_names
    assert np.array_equal(src.labels, ref.labels) and np.array_equal(src.split, ref.split)
    for row in range(len(src)):
        assert np.array_equal(np.asarray(src.load_rgb(row)), np.asarray(ref.load_rgb(row)))
    for name, s in (("dir", ref), ("tar", src)):
        extract(tmp_path / f"{name}.zarr", dataset="ds", source=s, backbones=[TINY], workers=0,
                device="cpu", batch_size=4)  # fmt: skip
    a, b = open_store(tmp_path / "dir.zarr"), open_store(tmp_path / "tar.zarr")
    assert np.array_equal(a.embeddings("ds", TINY), b.embeddings("ds", TINY))
    assert np.array_equal(a.ids("ds"), b.ids("ds"))


def test_cli_reads_a_folder_of_shards_with_worker_processes(tmp_path):
    folder = mixed_folder(tmp_path / "imgs")
    write_shards(folder, tmp_path / "shards", n_shards=3)
    args = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--source"]
    args += [str(tmp_path / "shards"), "--backbone", TINY, "--workers", "2", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "s.zarr")
    assert store.ids("ds").tolist() == ImageFolderSource(folder).ids.tolist()
    assert store.missing("ds", TINY) == [] and store.array_info("ds", TINY).complete


def test_index_is_cached_and_rebuilt_when_a_shard_changes(tmp_path, private_cache, monkeypatch):
    folder = mixed_folder(tmp_path / "imgs")
    shards = write_shards(folder, tmp_path / "shards")
    pattern = str(tmp_path / "shards" / "imgs-*.tar")
    first = TarShardSource(pattern)
    assert len(list(private_cache.glob("*.json"))) == 2
    real_scan = tarindex._scan

    def no_scan(path):
        raise AssertionError(f"{path} was scanned again")

    monkeypatch.setattr(tarindex, "_scan", no_scan)
    again = TarShardSource(pattern)  # from the cache: no tar is read
    assert again.ids.tolist() == first.ids.tolist()
    assert np.array_equal(np.asarray(again.load_rgb(7)), np.asarray(first.load_rgb(7)))
    with tarfile.open(shards[1], "a") as tar:  # the shard grows: size and mtime change
        _add(tar, "normal/99.png", (folder / "normal" / "00.png").read_bytes())
        _add(tar, "normal/99.cls", b"normal")
    monkeypatch.setattr(tarindex, "_scan", real_scan)
    grown = TarShardSource(pattern)
    assert len(grown) == 13 and grown.ids[-1] == "normal/99.png"
    assert np.array_equal(np.asarray(grown.load_rgb(12)), np.asarray(first.load_rgb(8)))


def test_json_labels_with_split_group_and_multilabel(tmp_path):
    folder = mixed_folder(tmp_path / "imgs")
    write_shards(folder, tmp_path / "shards", n_shards=1, label="json")
    src = open_source(str(tmp_path / "shards" / "imgs-000000.tar"), task="multiclass")
    assert src.split_origin == "source" and src.split.tolist() == [0, 0, 0, 2] * 3
    assert src.group.tolist()[:2] == ["benign/00", "benign/01"]
    assert src.class_names == ("benign", "malignant", "normal") and src.task == "multiclass"
    path = tmp_path / "ml.tar"
    with tarfile.open(path, "w") as tar:
        for i, findings in enumerate([["edema"], [], ["edema", "nodule"], ["nodule"]]):
            _add(tar, f"s{i}.png", (folder / "benign" / "00.png").read_bytes())
            _add(tar, f"s{i}.json", json.dumps({"labels": findings}).encode())
    src = TarShardSource(path)
    assert src.task == "multilabel" and src.class_names == ("edema", "nodule")
    assert src.labels.tolist() == [[1, 0], [0, 0], [1, 1], [0, 1]]


def test_dicom_member_decodes_like_the_file(tmp_path):
    from tests.data.test_sources import _dicom

    raw = np.array([[0, 1000, 2000], [3000, 4000, 65535]], dtype=np.uint16)
    for i in range(2):
        _dicom(tmp_path / f"{i}.dcm", raw + i, center=3000.0, width=4000.0)
    with tarfile.open(tmp_path / "d.tar", "w") as tar:
        for i in range(2):
            _add(tar, f"x{i}.dcm", (tmp_path / f"{i}.dcm").read_bytes())
            _add(tar, f"x{i}.cls", str(i).encode())
    src = TarShardSource(tmp_path / "d.tar", class_names=["neg", "pos"])
    assert src.class_names == ("neg", "pos") and src.labels.tolist() == [0, 1]
    assert np.array_equal(src.load(1), read_dicom(tmp_path / "1.dcm"))


def _one_line(result) -> str:
    """The one error line (a progress bar may have been drawn before it)."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [ln for ln in result.output.strip().splitlines() if "img/s" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_malformed_shards_are_one_line(tmp_path):
    folder = mixed_folder(tmp_path / "imgs")
    write_shards(folder, tmp_path / "shards")
    base = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--backbone", TINY]
    missing = str(tmp_path / "shards" / "imgs-{000000..000003}.tar")
    line = _one_line(runner.invoke(app, [*base, "--source", missing]))
    assert "2 of 4 tar shard(s) do not exist" in line and "imgs-000002.tar" in line
    with tarfile.open(tmp_path / "gz.tar", "w:gz") as tar:
        _add(tar, "a.png", b"x")
    line = _one_line(runner.invoke(app, [*base, "--source", str(tmp_path / "gz.tar")]))
    assert "not an uncompressed tar file" in line and "gunzip" in line
    with tarfile.open(tmp_path / "nolabel.tar", "w") as tar:
        _add(tar, "a/1.png", (folder / "benign" / "00.png").read_bytes())
        _add(tar, "a/2.png", (folder / "benign" / "01.png").read_bytes())
        _add(tar, "a/2.cls", b"1")
    line = _one_line(runner.invoke(app, [*base, "--source", str(tmp_path / "nolabel.tar")]))
    assert "1 image member(s) have no <key>.cls or <key>.json label, e.g. ['a/1.png']" in line
    dup = [str(tmp_path / "shards" / "imgs-000000.tar")] * 2
    with pytest.raises(SourceError, match="named more than once"):
        TarShardSource(dup)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "imgs-000009.tar").write_bytes(
        (tmp_path / "shards" / "imgs-000000.tar").read_bytes()
    )
    with pytest.raises(SourceError, match="sample keys must be unique across shards"):
        TarShardSource([dup[0], tmp_path / "copy" / "imgs-000009.tar"])


def test_bad_member_is_a_missing_row_with_skip_bad(tmp_path):
    folder = mixed_folder(tmp_path / "imgs")
    (folder / "normal" / "01.png").write_bytes(b"not a png")
    write_shards(folder, tmp_path / "shards")
    args = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--backbone", TINY]
    args += ["--source", str(tmp_path / "shards" / "imgs-*.tar"), "--workers", "0"]
    line = _one_line(runner.invoke(app, args))
    assert "imgs-000001.tar[normal/01.png]" in line
    assert runner.invoke(app, [*args, "--skip-bad"]).exit_code == 0
    missing = open_store(tmp_path / "s.zarr").missing("ds", TINY)
    assert [m["id"] for m in missing] == ["normal/01.png"]

"""Archives: export -> verify -> import round trips, tampering, conflicts, merge, and the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store, open_store
from embedstore.archive import (
    MANIFEST_KEY,
    array_sha256,
    export_archive,
    import_archive,
    merge_stores,
    verify,
)
from embedstore.cli.main import app
from embedstore.errors import (
    ArchiveError,
    ConflictError,
    DatasetNotFoundError,
    ReadOnlyError,
    StoreExistsError,
)
from tests.conftest import make_dataset, write_embeddings

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def src(tmp_path):
    """Two datasets, three complete arrays (float32, float16, one with missing rows), one partial."""
    s = create_store(tmp_path / "src.zarr")
    make_dataset(s, "toy", n=40)
    rng = np.random.default_rng(3)
    ids = [f"x{i}" for i in range(30)]
    s.add_dataset(
        "other",
        ids=ids,
        labels=np.arange(30) % 3,
        split=np.arange(30) % 3,
        task="multiclass",
        class_names=["a", "b", "c"],
        group=[f"p{i // 2}" for i in range(30)],
    )
    write_embeddings(s, "toy", "bb", rng.normal(size=(40, 8)).astype(np.float32), chunk_rows=16)
    write_embeddings(s, "toy", "half", rng.normal(size=(40, 5)), dtype="float16", chunk_rows=7)
    w = s.writer("other", "bb", dim=6, chunk_rows=8)
    w.write(rng.normal(size=(30, 6)))
    w.mark_missing(4, "x4", "unreadable")
    w.finish({"name": "bb"})
    s.writer("toy", "partial", dim=4, chunk_rows=8).write(np.ones((10, 4)))
    return s


def _arrays(store) -> dict[str, object]:
    out = {}
    root = store.zarr_group
    for path, node in root.members(max_depth=None):
        if hasattr(node, "dtype"):
            out[path] = node
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rewrite_zip(archive: Path, out: Path, change=None, extra: dict[str, bytes] | None = None):
    """Copy an archive member by member (valid CRCs), changing some members' bytes."""
    with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, change(name, data) if change else data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return out


def test_round_trip_is_bit_identical(src, tmp_path):
    archive = tmp_path / "share.zip"
    result = export_archive(src.location, archive)
    assert result.datasets == {"other": ("bb",), "toy": ("bb", "half")}
    assert any(s.startswith("toy/partial") for s in result.skipped)
    assert not list(tmp_path.glob(".*partial"))

    report = verify(archive)
    assert report.ok, report.problem_lines()
    assert report.kind == "archive" and report.has_manifest
    checked = {c.path: c.checksum for c in report.checks}
    assert checked["toy/bb/embeddings"] == "ok" and checked["other/group"] == "ok"
    assert checked["other/bb/missing"] == "ok"

    dst = import_archive(archive, tmp_path / "dst.zarr")
    assert set(dst.datasets_added) == {"toy", "other"}
    assert set(dst.backbones_added) == {"toy/bb", "toy/half", "other/bb"}

    source, target = _arrays(src), _arrays(open_store(tmp_path / "dst.zarr"))
    assert set(target) == {k for k in source if not k.startswith("toy/partial/")}
    manifest = open_store(archive).zarr_group.attrs[MANIFEST_KEY]["arrays"]
    for path, arr in target.items():
        ref = source[path]
        assert arr.dtype == ref.dtype and arr.chunks == ref.chunks and arr.shape == ref.shape
        assert arr.compressors == ref.compressors
        a, b = arr[...], ref[...]
        assert a.dtype == b.dtype and np.array_equal(a, b)
        if a.dtype.kind == "f":
            assert a.tobytes() == b.tobytes()  # raw values, not just numerically equal
        digest = array_sha256(src.location, path)
        assert digest == array_sha256(str(tmp_path / "dst.zarr"), path) == manifest[path]["sha256"]
    # the stored chunk files themselves are byte-identical
    copied = _snapshot(tmp_path / "dst.zarr" / "toy" / "half")
    assert copied == _snapshot(tmp_path / "src.zarr" / "toy" / "half")
    t = open_store(tmp_path / "dst.zarr")
    assert t.missing("other", "bb") == src.missing("other", "bb")
    assert np.array_equal(t.group("other"), src.group("other"))
    assert verify(tmp_path / "dst.zarr").ok


def test_archive_reads_as_read_only_store(src, tmp_path):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive, datasets=["toy"], backbones=["half"])
    a = open_store(archive)
    assert a.read_only and a.datasets() == ["toy"] and a.backbones("toy") == ["half"]
    np.testing.assert_array_equal(a.embeddings("toy", "half"), src.embeddings("toy", "half"))
    np.testing.assert_array_equal(
        a.embeddings("toy", "half", split="test"), src.embeddings("toy", "half", split="test")
    )
    np.testing.assert_array_equal(a.labels("toy"), src.labels("toy"))
    with pytest.raises(ReadOnlyError):
        open_store(archive, mode="r+")
    with pytest.raises(ReadOnlyError):
        a.delete_dataset("toy")


def test_export_refuses_unknown_names_and_existing_archive(src, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope"):
        export_archive(src.location, tmp_path / "a.zip", datasets=["nope"])
    with pytest.raises(Exception, match="resnet"):
        export_archive(src.location, tmp_path / "a.zip", backbones=["resnet"])
    assert not (tmp_path / "a.zip").exists()
    export_archive(src.location, tmp_path / "a.zip")
    with pytest.raises(StoreExistsError):
        export_archive(src.location, tmp_path / "a.zip")


def test_interrupted_export_leaves_no_archive(src, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = zipfile.ZipFile.writestr

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(OSError, match="disk full"):
        export_archive(src.location, tmp_path / "a.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.zarr"]


def _data_offset(archive: Path, member: str) -> int:
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    with open(archive, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), dtype="<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len)


def test_flipped_byte_is_found_and_named(src, tmp_path):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive)
    # 1) a raw flipped byte inside a chunk (the zip CRC no longer matches either)
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(archive.read_bytes())
    offset = _data_offset(flipped, "toy/bb/embeddings/c/1/0") + 5
    data = bytearray(flipped.read_bytes())
    data[offset] ^= 0xFF
    flipped.write_bytes(bytes(data))

    # 2) a rebuilt zip (valid CRCs) whose chunk differs by one byte: only sha256 can tell
    def flip(name, data):
        if name == "toy/half/embeddings/c/2/0":
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    rebuilt = _rewrite_zip(archive, tmp_path / "rebuilt.zip", flip)
    for bad, path in ((flipped, "toy/bb/embeddings"), (rebuilt, "toy/half/embeddings")):
        report = verify(bad)
        assert not report.ok
        wrong = [c for c in report.checks if not c.ok]
        assert [c.path for c in wrong] == [path], report.problem_lines()
        assert wrong[0].checksum == "mismatch"
        result = runner.invoke(app, ["verify", str(bad)], env=WIDE)
        assert result.exit_code == 1
        assert path in result.output and "mismatch" in result.output
    payload = json.loads(runner.invoke(app, ["verify", str(rebuilt), "--json"]).stdout)
    assert payload["ok"] is False
    assert [c["path"] for c in payload["checks"] if c["problems"]] == ["toy/half/embeddings"]


def test_missing_and_added_members_are_reported(src, tmp_path):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive)
    dropped = tmp_path / "dropped.zip"
    with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(dropped, "w") as zout:
        for name in zin.namelist():
            if name != "toy/bb/embeddings/c/0/0":
                zout.writestr(name, zin.read(name))
    report = verify(dropped)
    assert {c.path for c in report.checks if not c.ok} == {"toy/bb/embeddings"}
    extra = _rewrite_zip(archive, tmp_path / "extra.zip", extra={"toy/notes.txt": b"hi"})
    report = verify(extra)
    assert not report.ok and any("toy/notes.txt" in p for p in report.problems)


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "toy\\..\\evil", "toy/../../evil"])
def test_tampered_member_name_is_refused_before_anything_is_written(src, tmp_path, name):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive)
    bad = _rewrite_zip(archive, tmp_path / "bad.zip", extra={name: b"owned"})
    target = tmp_path / "work" / "dst.zarr"
    with pytest.raises(ArchiveError, match="member") as exc:
        import_archive(bad, target)
    assert name in str(exc.value)
    assert not target.exists() and not (tmp_path / "work").exists()
    assert not list(tmp_path.rglob("evil"))
    existing = create_store(tmp_path / "existing.zarr")
    make_dataset(existing, "kept", n=10)
    before = _snapshot(tmp_path / "existing.zarr")
    result = runner.invoke(app, ["import", str(bad), str(tmp_path / "existing.zarr")])
    assert result.exit_code == 1 and "refused" in result.output
    assert _snapshot(tmp_path / "existing.zarr") == before
    assert not verify(bad).ok


def test_unsafe_codec_is_refused(src, tmp_path):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive)

    def pickle_codec(name, data):
        if name == "toy/bb/embeddings/zarr.json":
            meta = json.loads(data)
            meta["codecs"].append({"name": "numcodecs.pickle", "configuration": {}})
            return json.dumps(meta).encode()
        return data

    bad = _rewrite_zip(archive, tmp_path / "bad.zip", pickle_codec)
    report = verify(bad)
    problems = " ".join(report.problem_lines())
    assert "numcodecs.pickle" in problems and "layout not checked" in problems
    with pytest.raises(ArchiveError, match="failed verification"):
        import_archive(bad, tmp_path / "dst.zarr")
    assert not (tmp_path / "dst.zarr").exists()


def _conflicting_target(tmp_path, src):
    t = create_store(tmp_path / "dst.zarr")
    ids = src.ids("toy")
    labels = 1 - src.labels("toy")
    t.add_dataset(
        "toy", ids=ids, labels=labels, split=src.split("toy"), task="binary", class_names=["a", "b"]
    )
    return t


def test_conflicting_dataset_fails_skips_or_renames(src, tmp_path):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive)
    _conflicting_target(tmp_path, src)
    before = _snapshot(tmp_path / "dst.zarr")
    with pytest.raises(ConflictError, match=r"dataset 'toy'.*labels") as exc:
        import_archive(archive, tmp_path / "dst.zarr")
    assert "ids" not in str(exc.value).split("in:")[1].split(";")[0]
    assert _snapshot(tmp_path / "dst.zarr") == before

    r = import_archive(archive, tmp_path / "dst.zarr", on_conflict="skip")
    assert r.datasets_skipped == ("toy",) and r.datasets_added == ("other",)
    t = open_store(tmp_path / "dst.zarr")
    assert t.datasets() == ["other", "toy"] and t.backbones("toy") == []

    r = import_archive(archive, tmp_path / "dst.zarr", on_conflict="rename")
    assert r.renamed == {"toy": "toy-2"}
    t = open_store(tmp_path / "dst.zarr")
    np.testing.assert_array_equal(t.labels("toy-2"), src.labels("toy"))
    np.testing.assert_array_equal(t.embeddings("toy-2", "bb"), src.embeddings("toy", "bb"))
    assert "other/bb: already complete" in " ".join(r.backbones_skipped)
    again = import_archive(archive, tmp_path / "dst.zarr", on_conflict="rename")
    assert again.renamed == {"toy": "toy-2"} and again.backbones_added == ()
    assert open_store(tmp_path / "dst.zarr").datasets() == ["other", "toy", "toy-2"]


def test_complete_backbone_is_skipped_unless_overwrite(src, tmp_path):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive, datasets=["toy"])
    t = create_store(tmp_path / "dst.zarr")
    make_dataset(t, "toy", n=40)
    own = np.zeros((40, 8), dtype=np.float32)
    write_embeddings(t, "toy", "bb", own, chunk_rows=10)
    r = import_archive(archive, tmp_path / "dst.zarr")
    assert r.backbones_added == ("toy/half",) and "toy/bb" in r.backbones_skipped[0]
    np.testing.assert_array_equal(open_store(tmp_path / "dst.zarr").embeddings("toy", "bb"), own)
    r = import_archive(archive, tmp_path / "dst.zarr", overwrite=True)
    assert r.backbones_replaced == ("toy/bb", "toy/half")
    t = open_store(tmp_path / "dst.zarr")
    np.testing.assert_array_equal(t.embeddings("toy", "bb"), src.embeddings("toy", "bb"))
    assert t.array_info("toy", "bb").chunk_rows == 16


def test_corrupt_archive_import_leaves_target_as_it_was(src, tmp_path):
    archive = tmp_path / "share.zip"
    export_archive(src.location, archive)
    bad = _rewrite_zip(
        archive,
        tmp_path / "bad.zip",
        lambda n, d: d[:-1] + b"\0" if n == "other/bb/embeddings/c/1/0" else d,
    )
    t = create_store(tmp_path / "dst.zarr")
    make_dataset(t, "toy", n=40)
    before = _snapshot(tmp_path / "dst.zarr")
    result = runner.invoke(app, ["import", str(bad), str(tmp_path / "dst.zarr")])
    assert result.exit_code == 1
    assert "other/bb/embeddings" in result.output and "Traceback" not in result.output
    assert _snapshot(tmp_path / "dst.zarr") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_merge_combines_agreeing_stores(src, tmp_path):
    b = create_store(tmp_path / "b.zarr")
    make_dataset(b, "toy", n=40)
    extra = np.random.default_rng(9).normal(size=(40, 3)).astype(np.float32)
    write_embeddings(b, "toy", "new", extra)
    write_embeddings(b, "toy", "bb", src.embeddings("toy", "bb"), chunk_rows=5)  # same values
    make_dataset(b, "third", n=12, classes=("x", "y", "z"))
    r = merge_stores(src.location, b.location, tmp_path / "m.zarr")
    m = open_store(tmp_path / "m.zarr")
    assert m.datasets() == ["other", "third", "toy"]
    assert m.backbones("toy") == ["bb", "half", "new"]
    np.testing.assert_array_equal(m.embeddings("toy", "new"), extra)
    np.testing.assert_array_equal(m.embeddings("toy", "bb"), src.embeddings("toy", "bb"))
    assert "third" in r.datasets_added
    assert verify(tmp_path / "m.zarr").ok

    result = runner.invoke(app, ["merge", src.location, b.location, str(tmp_path / "m.zarr")])
    assert result.exit_code == 1 and "already exists" in result.output


def test_merge_conflicts_name_dataset_and_field(src, tmp_path):
    b = create_store(tmp_path / "b.zarr")
    ids, labels, split = src.ids("toy"), src.labels("toy"), src.split("toy")
    b.add_dataset(
        "toy", ids=ids, labels=labels, split=(split + 1) % 3, task="binary", class_names=["a", "b"]
    )
    with pytest.raises(ConflictError, match=r"dataset 'toy'.*split"):
        merge_stores(src.location, b.location, tmp_path / "m.zarr")
    assert not (tmp_path / "m.zarr").exists()

    c = create_store(tmp_path / "c.zarr")
    make_dataset(c, "toy", n=40)
    write_embeddings(c, "toy", "bb", np.ones((40, 8), dtype=np.float32))
    result = runner.invoke(app, ["merge", src.location, c.location, str(tmp_path / "m.zarr")])
    assert result.exit_code == 1
    assert "'toy'" in result.output and "'bb'" in result.output and "embeddings" in result.output
    assert not (tmp_path / "m.zarr").exists()


def test_cli_export_import_and_read_commands_on_an_archive(src, tmp_path):
    archive = tmp_path / "share.zip"
    result = runner.invoke(
        app, ["export", src.location, str(archive), "-d", "toy", "-b", "bb", "-b", "partial"]
    )
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "toy/partial" in result.output
    result = runner.invoke(app, ["ls", str(archive), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["datasets"]
    assert [d["name"] for d in listed] == ["toy"] and listed[0]["backbones"] == ["bb"]
    result = runner.invoke(app, ["info", str(archive), "toy", "bb", "--json"])
    assert json.loads(result.stdout)["shape"] == [40, 8]
    result = runner.invoke(app, ["verify", str(archive)], env=WIDE)
    assert result.exit_code == 0 and "all checks passed" in result.output
    result = runner.invoke(app, ["import", str(archive), str(tmp_path / "d.zarr")])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        open_store(tmp_path / "d.zarr").embeddings("toy", "bb"), src.embeddings("toy", "bb")
    )
    result = runner.invoke(app, ["verify", src.location], env=WIDE)
    assert result.exit_code == 1 and "(no manifest)" in result.output
    assert "incomplete" in result.output
    result = runner.invoke(
        app, ["import", str(archive), str(tmp_path / "e.zarr"), "--on-conflict", "merge-please"]
    )
    assert result.exit_code == 1 and "on_conflict must be one of" in result.output


def test_every_archive_command_has_help():
    for name in ("export", "verify", "import", "merge"):
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout, name


def test_verify_reports_layout_problems_of_a_plain_store(src, tmp_path):
    report = verify(src.location)
    assert not report.has_manifest and report.kind == "store"
    bad = {c.path: c.problems for c in report.checks if not c.ok}
    assert list(bad) == ["toy/partial/embeddings"] and "incomplete" in bad[list(bad)[0]][0]
    # labels outside the class range, written behind the store API's back
    src.zarr_group["other"]["labels"][3] = 7
    report = verify(src.location)
    assert any(
        "outside the 3 classes" in p
        for p in dict((c.path, " ".join(c.problems)) for c in report.checks).values()
    )

"""What `verify` guarantees: an archive must carry its manifest (or the user asks for layout checks
only), every problem line stands alone, and a consistent forgery passes (integrity, not
authenticity) while the archive's sha256 tells it apart."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store, open_store
from embedstore.archive import MANIFEST_KEY, export_archive, import_archive, verify
from embedstore.cli.main import app
from embedstore.errors import ArchiveError
from tests.conftest import make_dataset, write_embeddings

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def _store(path: Path, seed: int = 0):
    s = create_store(path)
    make_dataset(s, "toy", n=40)
    rng = np.random.default_rng(seed)
    write_embeddings(s, "toy", "bb", rng.normal(size=(40, 8)).astype(np.float32), chunk_rows=16)
    return s


@pytest.fixture
def archive(tmp_path) -> Path:
    _store(tmp_path / "src.zarr")
    export_archive(tmp_path / "src.zarr", tmp_path / "share.zip")
    return tmp_path / "share.zip"


def _edit_root(archive: Path, out: Path, edit) -> Path:
    """Copy the archive with its root zarr.json changed by ``edit(root_dict)`` (None: drop it)."""
    with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "zarr.json":
                root = edit(json.loads(data))
                if root is None:
                    continue
                data = json.dumps(root).encode()
            zout.writestr(info, data)
    return out


def _strip(root: dict) -> dict:
    del root["attributes"][MANIFEST_KEY]
    return root


def _garble(root: dict) -> dict:
    root["attributes"][MANIFEST_KEY] = {"checksum": "md5", "arrays": []}
    return root


@pytest.mark.parametrize(
    ("edit", "needle"),
    [(_strip, "the manifest is missing"), (_garble, "the manifest is malformed")],
    ids=["stripped", "malformed"],
)
def test_an_archive_without_its_manifest_fails_unless_layout_only(archive, tmp_path, edit, needle):
    bad = _edit_root(archive, tmp_path / "bad.zip", edit)
    report = verify(bad)
    assert not report.ok and report.kind == "archive" and not report.has_manifest
    (line,) = [p for p in report.problem_lines() if needle in p]
    assert "--layout-only" in line and "sha256" in line
    # every array is otherwise fine: the manifest is the only problem
    assert report.problem_lines() == [line]

    result = runner.invoke(app, ["verify", str(bad)], env=WIDE)
    assert result.exit_code == 1 and needle in result.stderr
    problems = [x for x in result.stderr.splitlines() if x.startswith("problem:")]
    assert len(problems) == 1 and "all checks passed" not in result.output

    layout = runner.invoke(app, ["verify", str(bad), "--layout-only"], env=WIDE)
    assert layout.exit_code == 0, layout.output
    assert "manifest's checksums were NOT checked" in layout.stdout
    assert "all checks passed" in layout.stdout
    assert verify(bad, layout_only=True).layout_only

    target = tmp_path / "t.zarr"
    with pytest.raises(ArchiveError, match=needle):
        import_archive(bad, target)
    assert not target.exists() and not list(tmp_path.glob(".t.zarr*"))
    result = runner.invoke(app, ["import", str(bad), str(target)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert needle in result.output and "see above" not in result.output
    result = runner.invoke(app, ["import", str(bad), str(target), "--layout-only"])
    assert result.exit_code == 0, result.output
    merged = tmp_path / "m.zarr"
    result = runner.invoke(app, ["merge", str(bad), str(archive), str(merged)])
    assert result.exit_code == 1 and needle in result.output and not merged.exists()
    result = runner.invoke(app, ["merge", str(bad), str(archive), str(merged), "--layout-only"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        open_store(target).embeddings("toy", "bb"), open_store(archive).embeddings("toy", "bb")
    )


def test_layout_only_still_finds_a_flipped_chunk_by_its_recorded_checksum(archive, tmp_path):
    stripped = _edit_root(archive, tmp_path / "stripped.zip", _strip)
    flipped = tmp_path / "flipped.zip"
    with zipfile.ZipFile(stripped) as zin, zipfile.ZipFile(flipped, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "toy/bb/embeddings/c/1/0":
                data = data[:-1] + bytes([data[-1] ^ 1])
            zout.writestr(info, data)
    report = verify(flipped, layout_only=True)
    bad = {c.path: c.problems for c in report.checks if not c.ok}
    assert list(bad) == ["toy/bb/embeddings"] and "sha256 recorded" in bad["toy/bb/embeddings"][0]


def test_an_archive_without_a_root_zarr_json_fails(archive, tmp_path):
    bad = _edit_root(archive, tmp_path / "noroot.zip", lambda root: None)
    report = verify(bad, layout_only=True)
    assert not report.ok and any("no readable zarr.json at the root" in p for p in report.problems)


def test_an_unzipped_archive_keeps_needing_its_manifest_a_store_does_not(archive, tmp_path):
    folder = tmp_path / "unzipped.zarr"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    assert verify(folder).ok and verify(folder).has_manifest
    _strip_file = folder / "zarr.json"
    _strip_file.write_text(json.dumps(_strip(json.loads(_strip_file.read_text()))))
    report = verify(folder)
    assert not report.ok and any("the manifest is missing" in p for p in report.problems)
    assert verify(folder, layout_only=True).ok
    # a store that was never exported has no manifest and needs none
    assert verify(tmp_path / "src.zarr").ok and not verify(tmp_path / "src.zarr").has_manifest


def test_a_consistent_forgery_verifies_and_only_the_sha256_tells(archive, tmp_path):
    """By design: checksums travel with the data. An archive re-exported from altered data carries
    a matching manifest and verifies; the archive's sha256 is what differs."""
    original = verify(archive)
    assert original.ok
    assert original.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    forged_store = _store(tmp_path / "forged.zarr", seed=1)  # same names, other embeddings
    forged = tmp_path / "forged.zip"
    made = export_archive(forged_store.location, forged)
    report = verify(forged)
    assert report.ok and report.has_manifest
    assert made.sha256 == report.sha256 != original.sha256
    assert not np.array_equal(
        open_store(forged).embeddings("toy", "bb"), open_store(archive).embeddings("toy", "bb")
    )


def test_export_and_verify_print_the_same_sha256_and_say_what_verify_guarantees(tmp_path):
    _store(tmp_path / "s.zarr")
    out = tmp_path / "a.zip"
    result = runner.invoke(app, ["export", str(tmp_path / "s.zarr"), str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in result.stdout and "trust" in result.stdout
    result = runner.invoke(app, ["verify", str(out)], env=WIDE)
    assert result.exit_code == 0 and f"archive sha256: {digest}" in result.stdout
    assert "not tampering" in result.stdout and "all checks passed" in result.stdout
    payload = json.loads(runner.invoke(app, ["verify", str(out), "--json"]).stdout)
    assert payload["sha256"] == digest and "not tampering" in payload["guarantee"]
    assert payload["layout_only"] is False and "manifest" in payload["checked"]
    helptext = " ".join(runner.invoke(app, ["verify", "--help"], env=WIDE).stdout.split())
    assert "not tampering" in helptext and "sha256" in helptext and "--layout-only" in helptext
    helptext = runner.invoke(app, ["import", "--help"], env=WIDE).stdout
    assert "--layout-only" in helptext


def test_a_store_missing_half_of_its_chunk_record_fails(tmp_path):
    s = _store(tmp_path / "s.zarr")
    assert verify(s.location).ok and not verify(s.location).unrecorded
    shutil.rmtree(tmp_path / "s.zarr" / "toy" / "bb" / "chunk_nbytes")
    report = verify(s.location)
    bad = {c.path: c.problems for c in report.checks if not c.ok}
    assert "'chunk_nbytes' array is gone" in bad["toy/bb/embeddings"][0]
    # both halves gone reads as a format-1 array: passes, but says no checksum covered it
    shutil.rmtree(tmp_path / "s.zarr" / "toy" / "bb" / "checksums")
    report = verify(s.location)
    assert report.unrecorded == ["toy/bb/embeddings"]
    result = runner.invoke(app, ["verify", s.location], env=WIDE)
    assert "no checksum covers toy/bb/embeddings" in result.stdout


def test_unsafe_metadata_problem_names_the_node_without_see_above(archive, tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "toy/bb/embeddings/zarr.json":
                meta = json.loads(data)
                meta["codecs"].append({"name": "numcodecs.pickle", "configuration": {}})
                data = json.dumps(meta).encode()
            zout.writestr(info, data)
    report = verify(bad)
    (line,) = [p for p in report.problems if p.startswith("layout not checked")]
    assert "toy/bb/embeddings" in line and "numcodecs.pickle" in line
    assert not any("see above" in p for p in report.problem_lines())
    result = runner.invoke(app, ["import", str(bad), str(tmp_path / "t.zarr")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "numcodecs.pickle" in result.output and "see above" not in result.output

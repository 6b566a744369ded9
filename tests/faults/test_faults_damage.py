"""Damage made to a plain local store, one kind at a time: `verify` names each one, and `probe`
(and the reads under it) refuse the store with one line instead of reading wrong numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.archive import import_archive, verify
from embedstore.cli.main import app
from embedstore.errors import CorruptStoreError, EmbedstoreError
from embedstore.testing.damage import DAMAGES, OVERSIZED, SILENT, make_store


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("pristine") / "s.zarr")


def test_an_undamaged_store_verifies_except_its_incomplete_array(pristine):
    report = verify(pristine)
    bad = {c.path: c.problems for c in report.checks if not c.ok}
    assert (
        list(bad) == ["toy/partial/embeddings"] and "incomplete" in bad["toy/partial/embeddings"][0]
    )
    checked = {c.path: c.checksum for c in report.checks}
    assert checked["toy/bb/embeddings"] == "ok" and checked["toy/labels"] == "ok"


@pytest.mark.parametrize("name,damage,rel,array,says", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_verify_names_the_damage_and_probe_refuses_the_store(
    pristine, tmp_path, name, damage, rel, array, says
):
    store = tmp_path / "s.zarr"
    shutil.copytree(pristine, store)
    damage(store / rel)
    report = verify(store)
    assert not report.ok
    lines = report.problem_lines()
    assert any(line.startswith(array) and says in line for line in lines), lines
    # verify on the CLI: exit 1 and the damage in its output
    result = CliRunner().invoke(app, ["verify", str(store)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    # probe: one line, exit 1 (the incomplete array is not asked for)
    backbone = "partial" if "partial" in array else "bb"
    result = CliRunner().invoke(
        app, ["probe", str(store), "-d", "toy", "-b", backbone, "--method", "knn"]
    )
    out = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 1 and len(out) == 1 and "Traceback" not in result.output, (
        result.output
    )
    assert "damaged" in out[0] or "outside the 3 classes" in out[0], out[0]
    with pytest.raises(CorruptStoreError):
        s = open_store(store)
        s.labels("toy")
        s.embeddings("toy", backbone)


def test_flipped_byte_in_labels_within_range_is_found_by_its_checksum(pristine, tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(pristine, store)
    labels = zarr.open_array(store / "toy" / "labels", mode="r+")
    values = np.asarray(labels[:])
    values[3] = (values[3] + 1) % 3  # still a valid class: only the checksum can tell
    labels[...] = values
    lines = verify(store).problem_lines()
    assert any(line.startswith("toy/labels") and "sha256 recorded" in line for line in lines), lines


@pytest.mark.parametrize("name", list(SILENT))
def test_verify_finds_what_a_read_would_get_wrong_and_reads_refuse_it(pristine, tmp_path, name):
    store = tmp_path / "s.zarr"
    shutil.copytree(pristine, store)
    before = open_store(pristine)
    X, y = before.embeddings("toy", "bb"), before.labels("toy")
    classes = before.dataset_info("toy").class_names
    SILENT[name](store)
    new = set(verify(store).problem_lines()) - set(verify(pristine).problem_lines())
    assert new, name  # beyond the partial array's "incomplete"
    s = open_store(store)
    for backbone in ("bb", "partial"):
        try:  # refused in one error, or read exactly as written: never wrong
            info = s.dataset_info("toy")
            got_X, got_y = s.embeddings("toy", backbone), s.labels("toy")
        except CorruptStoreError as exc:
            assert "damaged" in str(exc) and "\n" not in str(exc)
            continue
        except EmbedstoreError:
            continue  # e.g. the partial array is incomplete: refused as such
        assert backbone == "bb" and info.class_names == classes, name
        np.testing.assert_array_equal(got_X, X)
        np.testing.assert_array_equal(got_y, y)
    backbone = "partial" if "partial" in name else "bb"
    result = CliRunner().invoke(app, ["probe", str(store), "-d", "toy", "-b", backbone,
                                      "--method", "knn"])  # fmt: skip
    if name not in ("checksums chunk deleted", "stray chunk outside the grid"):
        assert result.exit_code == 1 and "damaged" in result.output, (name, result.output)


@pytest.mark.parametrize("name", list(OVERSIZED))
def test_verify_and_import_agree_on_nesting_and_metadata_limits(pristine, tmp_path, name):
    damage, says = OVERSIZED[name]
    store = tmp_path / "s.zarr"
    shutil.copytree(pristine, store)
    damage(store)
    report = verify(store)
    assert any(says in line for line in report.problem_lines()), report.problem_lines()
    with pytest.raises(EmbedstoreError):
        import_archive(store, tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists()
    result = CliRunner().invoke(app, ["ls", str(store)])
    assert "Traceback" not in result.output and result.exit_code in (0, 1)

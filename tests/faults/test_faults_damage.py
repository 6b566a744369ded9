"""Damage made to a plain local store, one kind at a time: `verify` names each one, and `probe`
(and the reads under it) refuse the store with one line instead of reading wrong numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from embedstore import create_store, open_store
from embedstore.archive import import_archive, verify
from embedstore.cli.main import app
from embedstore.errors import CorruptStoreError, EmbedstoreError
from tests.conftest import make_dataset


def make_store(path: Path) -> Path:
    """60 rows, 3 classes, backbone 'bb' complete (4 chunks of 16 rows), 'partial' half done."""
    store = create_store(path)
    make_dataset(store, n=60, classes=("x", "y", "z"))
    X = np.random.default_rng(0).normal(size=(60, 32)).astype(np.float32)
    w = store.writer("toy", "bb", dim=32, dtype="float32", chunk_rows=16)
    for i in range(0, 60, 10):
        w.write(X[i : i + 10])
    assert w.finish({"name": "bb"})
    p = store.writer("toy", "partial", dim=32, dtype="float32", chunk_rows=16)
    p.write(X[:32])  # two of four chunks
    return path


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _set_complete(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["attributes"]["complete"] = True
    path.write_text(json.dumps(meta))


def _labels_out_of_range(store: Path) -> None:
    zarr.open_group(store, mode="r+")["toy"]["labels"][7] = 9


# (name, damage, path under the store, what verify must say about which array, reads refused)
DAMAGES = [
    ("flipped byte in a chunk", _flip, "toy/bb/embeddings/c/1/0", "toy/bb/embeddings", "chunk 1 (rows 16-31"),
    ("truncated chunk", _truncate, "toy/bb/embeddings/c/2/0", "toy/bb/embeddings", "truncated"),
    ("deleted chunk", Path.unlink, "toy/bb/embeddings/c/0/0", "toy/bb/embeddings", "chunk 0 (rows 0-15, 'toy/bb/embeddings/c/0/0') is missing"),
    ("deleted array zarr.json", Path.unlink, "toy/bb/embeddings/zarr.json", "toy/bb/embeddings", "'embeddings' array is gone"),
    ("complete set on a partial array", _set_complete, "toy/partial/zarr.json", "toy/partial/embeddings", "marked complete, but 2 of 4 chunk(s) were never written"),
    ("labels out of range", None, "", "toy/labels", "labels in [0, 9], outside the 3 classes"),
]  # fmt: skip


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
    if damage is None:
        _labels_out_of_range(store)
    else:
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
    labels = zarr.open_group(store, mode="r+")["toy"]["labels"]
    values = labels[:]
    values[3] = (values[3] + 1) % 3  # still a valid class: only the checksum can tell
    labels[...] = values
    lines = verify(store).problem_lines()
    assert any(line.startswith("toy/labels") and "sha256 recorded" in line for line in lines), lines


def _edit(rel: str, change) -> callable:
    def apply(store: Path) -> None:
        p = store / rel / "zarr.json"
        meta = json.loads(p.read_text())
        change(meta)
        p.write_text(json.dumps(meta))

    return apply


def _big_endian(meta: dict) -> None:
    for codec in meta["codecs"]:
        if codec["name"] == "bytes":
            codec.setdefault("configuration", {})["endian"] = "big"


def _stray_chunk(store: Path) -> None:
    (store / "toy/bb/embeddings/c/9").mkdir()
    shutil.copy(store / "toy/bb/embeddings/c/0/0", store / "toy/bb/embeddings/c/9/0")


# Damage that a read would get wrong if nothing checked it: verify must name it, and every read
# must either refuse it or return exactly what was written.
SILENT = {
    "checksums chunk deleted": lambda s: (s / "toy/bb/checksums/c/1/0").unlink(),
    "stray chunk outside the grid": _stray_chunk,
    "embeddings shape cut to 32 rows": _edit(
        "toy/bb/embeddings", lambda m: m.update(shape=[32, 32])
    ),
    "embeddings data_type int32": _edit("toy/bb/embeddings", lambda m: m.update(data_type="int32")),
    "embeddings bytes big-endian": _edit("toy/bb/embeddings", _big_endian),
    "class_names reordered": _edit(
        "toy", lambda m: m["attributes"].update(class_names=["z", "y", "x"])
    ),
    "task changed": _edit("toy", lambda m: m["attributes"].update(task="ordinal")),
    "n_samples changed": _edit("toy", lambda m: m["attributes"].update(n_samples=59)),
    "complete 'yes' on a partial array": _edit(
        "toy/partial", lambda m: m["attributes"].update(complete="yes")
    ),
    "provenance edited": _edit("toy/bb", lambda m: m["attributes"].update(provenance={})),
    "labels fill_value 1": _edit("toy/labels", lambda m: m.update(fill_value=1)),
    "labels data_type uint8": _edit("toy/labels", lambda m: m.update(data_type="uint8")),
    "split dimension names": _edit("toy/split", lambda m: m.update(dimension_names=["x"])),
}


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


def _nest(store: Path) -> None:
    folder = store / "toy" / "bb"
    for i in range(300):
        folder = folder / f"g{i}"
        folder.mkdir()
        (folder / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')


def _attr(rel: str, key: str, value) -> callable:
    return _edit(rel, lambda m: m["attributes"].update({key: value}))


OVERSIZED = {
    "300 nested groups": (_nest, "nested below a backbone"),
    "a 17 MiB attribute": (_attr("toy/bb", "blob", "x" * (17 * 2**20)), "metadata size limit"),
    "100,001 class names": (
        _attr("toy", "class_names", [str(i) for i in range(100_001)]),
        "100,001 class names",
    ),
}


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

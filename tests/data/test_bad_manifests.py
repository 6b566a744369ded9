"""Bad CSV manifests through `embedstore extract`: one line naming what was found, exit 1; and the
paths a researcher's CSV really holds (``..``, absolute paths) are read, with ids as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.data import CsvSource
from embedstore.errors import SourceError
from tests.data.conftest import TINY, good_folder

runner = CliRunner()


def _csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _manifest_lines(root: Path, prefix: str = "imgs/") -> list[str]:
    """'path,label,fold' rows for the six images of good_folder(root), 4 train / 2 test."""
    files = sorted(root.rglob("*.png"))
    return ["path,label,fold"] + [
        f"{prefix}{p.relative_to(root).as_posix()},{p.parent.name},{'test' if i % 3 == 2 else 'train'}"
        for i, p in enumerate(files)
    ]


def _extract(tmp_path: Path, source: Path, *extra: str):
    args = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--source", str(source)]
    args += ["--backbone", TINY, "--workers", "0", "--device", "cpu", *extra]
    return runner.invoke(app, args)


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def root(tmp_path) -> Path:
    return good_folder(tmp_path / "imgs")


def test_missing_column_names_the_columns_found(tmp_path, root):
    lines = [ln.replace("path,label", "file,diagnosis") for ln in _manifest_lines(root)]
    line = _one_error_line(_extract(tmp_path, _csv(tmp_path / "m.csv", lines)))
    assert "no column 'path' (columns: file, diagnosis, fold)" in line and "--path-column" in line
    ok = _extract(tmp_path, tmp_path / "m.csv", "--path-column", "file", "--label-column", "x")
    assert "no column 'x'" in _one_error_line(ok) and "--label-column" in _one_error_line(ok)


def test_duplicate_ids_are_listed_with_their_lines(tmp_path, root):
    lines = _manifest_lines(root)
    lines.append(lines[2])
    lines.append(lines[3].replace("imgs/", "./imgs/"))  # the same file spelled differently
    line = _one_error_line(_extract(tmp_path, _csv(tmp_path / "m.csv", lines)))
    assert "2 image(s) listed more than once" in line
    assert "'imgs/neg/1.png' (lines 3 and 8)" in line and "(lines 4 and 9)" in line


def test_missing_files_are_listed_then_skip_bad_records_them(tmp_path, root):
    lines = _manifest_lines(root)
    lines += ["imgs/pos/gone.png,pos,train", "imgs/neg/lost.png,neg,test"]
    csv = _csv(tmp_path / "m.csv", lines)
    line = _one_error_line(_extract(tmp_path, csv, "--split-column", "fold"))
    assert "2 of 8 listed image file(s) do not exist" in line
    assert "'imgs/pos/gone.png' (line 8), 'imgs/neg/lost.png' (line 9)" in line
    assert not (tmp_path / "s.zarr").exists()  # nothing created for a refused manifest
    done = _extract(tmp_path, csv, "--split-column", "fold", "--skip-bad")
    assert done.exit_code == 0, done.output
    missing = open_store(tmp_path / "s.zarr").missing("ds", TINY)
    assert [m["id"] for m in missing] == ["imgs/pos/gone.png", "imgs/neg/lost.png"]
    assert all("does not exist" in m["reason"] for m in missing)


def test_dotdot_and_absolute_paths_are_read_and_ids_kept_as_written(tmp_path, root):
    files = sorted(root.rglob("*.png"))
    rows = ["path,label"]
    for i, p in enumerate(files):
        rel = p.relative_to(root).as_posix()
        rows.append(f"{p if i % 2 else '../imgs/' + rel},{p.parent.name}")
    csv = _csv(tmp_path / "manifests" / "m.csv", rows)
    result = _extract(tmp_path, csv)
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "s.zarr")
    assert store.ids("ds").tolist() == [r.split(",")[0] for r in rows[1:]]
    assert store.ids("ds")[1] == str(files[1]) and store.ids("ds")[0] == "../imgs/neg/0.png"
    assert store.missing("ds", TINY) == []


def test_empty_label_names_the_line(tmp_path, root):
    lines = _manifest_lines(root)
    lines[4] = lines[4].replace(",pos,", ",,").replace(",neg,", ",,")
    line = _one_error_line(_extract(tmp_path, _csv(tmp_path / "m.csv", lines)))
    assert "empty label in column 'label' on line 5" in line


def test_unknown_split_values_are_listed(tmp_path, root):
    lines = _manifest_lines(root)
    lines[2] = lines[2].replace(",train", ",tset")
    lines[5] = lines[5].replace(",train", ",holdout").replace(",test", ",holdout")
    line = _one_error_line(
        _extract(tmp_path, _csv(tmp_path / "m.csv", lines), "--split-column", "fold")
    )
    assert (
        "holds ['holdout', 'tset'] on lines 3, 6" in line and "expected train, val or test" in line
    )


def test_rows_with_extra_fields_and_non_utf8_files_are_refused(tmp_path, root):
    lines = _manifest_lines(root)
    lines[3] = lines[3] + ",surplus"
    line = _one_error_line(_extract(tmp_path, _csv(tmp_path / "m.csv", lines)))
    assert "line 4 has 4 fields but the header has 3" in line
    (tmp_path / "x.csv").write_bytes(b"path,label\n\xff\xfe\x00zz,1\n")
    assert "is not UTF-8 text" in _one_error_line(_extract(tmp_path, tmp_path / "x.csv"))


def test_errors_do_not_depend_on_the_cli(tmp_path, root):
    csv = _csv(tmp_path / "m.csv", [*_manifest_lines(root), "imgs/neg/0.png,neg,train"])
    with pytest.raises(SourceError, match="listed more than once"):
        CsvSource(csv)
    src = CsvSource(_csv(tmp_path / "ok.csv", _manifest_lines(root)), split_column="fold")
    assert src.split.tolist() == [0, 0, 2, 0, 0, 2]
    assert np.asarray(src.load_rgb(0)).shape == (10, 12, 3)

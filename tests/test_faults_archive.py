"""Hostile archives are refused by every entry point (open, probe, verify, import) before they
can write outside the target, inflate a bomb, or hand zarr unsafe metadata."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from embedstore import open_store
from embedstore.archive import import_archive, verify
from embedstore.errors import EmbedstoreError

from .hostile import HOSTILE, make_hostile


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it was asked for
        return make_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_archive_is_refused_everywhere(hostile, tmp_path, name):
    archive = hostile[name]
    tracemalloc.start()
    try:
        with pytest.raises(EmbedstoreError, match="refused"):
            open_store(archive)
        report = verify(archive)
        assert not report.ok and report.problem_lines()
        target = tmp_path / "target.zarr"
        with pytest.raises(EmbedstoreError):
            import_archive(archive, target)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB allocated: something was inflated"
    assert not target.exists() and not list(tmp_path.iterdir())
    assert not Path("/tmp/evil.txt").exists()
    for argv in (["probe", str(archive), "-d", "toy", "-b", "bb", "--method", "knn"],
                 ["import", str(archive), str(target)], ["ls", str(archive)]):  # fmt: skip
        result = CliRunner().invoke(app, argv)
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, (argv, result.output)
        assert "Traceback" not in result.output
    assert not target.exists()


def test_a_chunk_declaring_more_than_it_holds_is_refused_before_decoding(tmp_path):
    from .hostile import chunk_bomb, good_archive

    archive = chunk_bomb(good_archive(tmp_path), tmp_path / "bomb.zip")
    tracemalloc.start()
    try:
        report = verify(archive)
        with pytest.raises(EmbedstoreError, match="zstd bomb"):
            import_archive(archive, tmp_path / "target.zarr")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any("declares 67,108,864 bytes" in line for line in report.problem_lines())
    assert peak < 32 * 2**20 and not (tmp_path / "target.zarr").exists()

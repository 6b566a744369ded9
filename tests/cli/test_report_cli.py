"""`embedstore report`: records written by a real sweep, as Markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app

from ..conftest import make_dataset, write_embeddings

runner = CliRunner()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    store = create_store(tmp / "r.zarr")
    _, labels, _ = make_dataset(store, "d", n=90, classes=("a", "b", "c"))
    rng = np.random.default_rng(0)
    write_embeddings(
        store, "d", "m.good", (labels[:, None] + rng.normal(size=(90, 6))).astype("f4")
    )
    write_embeddings(store, "d", "m.noise", rng.normal(size=(90, 5)).astype("f4"))
    out = tmp / "sweep.jsonl"
    result = runner.invoke(
        app,
        ["sweep", store.location, "-d", "d", "-b", "good", "-b", "noise", "--shots", "1,3"]
        + ["--fractions", "1.0", "--seeds", "2", "--methods", "knn", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    return out


def test_terminal_table_by_default(results):
    result = runner.invoke(app, ["report", str(results)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "d, knn: accuracy (%), mean ± s.d. over 2 seeds" in result.stdout
    assert "m.good" in result.stdout and "n=54" in result.stdout and "† one subset" in result.stdout


def test_markdown(results):
    result = runner.invoke(app, ["report", str(results), "-f", "markdown"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "**d, knn: accuracy (%), mean ± s.d. over 2 seeds**" in text
    assert "| m.good | 18 |" in text  # test n per row
    assert "1-shot (n=3)" in text and "3-shot (n=9)" in text and "100% (n=54)" in text
    assert "† one subset" in text and "small test split: 18 rows" in text


def test_csv_and_latex_by_option_or_suffix(results, tmp_path):
    as_csv = runner.invoke(app, ["report", str(results), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 6 and {r["features"] for r in rows} == {"m.good", "m.noise"}
    assert all(r["n_test_min"] == "18" and r["n_seeds"] == "2" for r in rows)
    tex = tmp_path / "t.tex"
    result = runner.invoke(app, ["report", str(results), "-o", str(tex)])
    assert result.exit_code == 0 and r"\toprule" in tex.read_text()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "docx"], "table, markdown, latex, csv"),
        (["--metric", "roc_auc"], "accuracy, balanced_accuracy"),
        (["--metric", "kappa"], "ordinal"),
        (["-d", "other"], "no result records"),
    ],
)
def test_bad_input_is_one_line(results, args, needle):
    result = runner.invoke(app, ["report", str(results), *args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and needle in result.output


def test_missing_file(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 1 and "does not exist" in result.output

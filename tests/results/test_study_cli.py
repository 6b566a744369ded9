"""`embedstore report --study`: the study table on the terminal and in the table formats."""

from __future__ import annotations

from typer.testing import CliRunner

from embedstore.cli.main import app
from embedstore.results.records import write_jsonl

from .conftest import study_records


def test_study_table_on_the_terminal_with_ranks_and_friedman(tmp_path):
    values = {f"d{i}": {"dino": 0.8, "swav": 0.75 - 0.01 * i, "supervised": 0.7} for i in range(4)}
    path = tmp_path / "study.jsonl"
    write_jsonl(study_records(values, noise=0.001), path)
    res = CliRunner().invoke(app, ["report", str(path), "--study"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "avg rank" in res.output and "test n" in res.output
    # every dataset ranks alike: 12 / (N k (k + 1)) * (4² + 8² + 12²) - 3 N (k + 1) = 56 - 48
    assert "Friedman chi² = 8.000" in res.output
    out = tmp_path / "study.tex"
    res = CliRunner().invoke(app, ["report", str(path), "--study", "--out", str(out)])
    assert res.exit_code == 0 and r"\toprule" in out.read_text()
    res = CliRunner().invoke(app, ["report", str(path), "--study", "-f", "csv"])
    assert res.output.splitlines()[0].startswith("method,setting,metric,features,dataset")

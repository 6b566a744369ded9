"""Studies on the engine: records equal per-dataset sweeps, whatever the workers; resume, locks,
skips, and every malformed study file answered in one line before any work."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.engine.sweep import run_sweep
from embedstore.errors import InvalidDataError, StoreBusyError
from embedstore.probes.options import ProbeOptions
from embedstore.results.records import read_jsonl
from embedstore.store import writer_lock
from embedstore.study import read_study, run_study, study_status
from tests.engine.conftest import make_study_store, same_records

runner = CliRunner()
SETS = [["a"], ["b"], ["a", "b"]]


def test_study_records_equal_the_per_dataset_sweeps(study_dir):
    records = run_study(study_dir / "study.toml")
    assert len(records) == 3 * 3 * 2 * 2 * 2  # datasets x sets x methods x fractions x seeds
    assert {r.kind for r in records} == {"sweep"}
    for name in ("one", "two", "three"):
        sweep = run_sweep(
            open_store(study_dir / f"{name}.zarr"),
            name,
            SETS,
            fractions=[0.2, 1.0],
            seeds=2,
            methods="knn,proto",
            options=ProbeOptions(n_bootstrap=0),
        )
        assert same_records([r for r in records if r.dataset == name], sweep)
    assert same_records(read_jsonl(study_dir / "results.jsonl"), records)


def test_two_workers_give_the_same_records_as_one(study_dir, tmp_path_factory):
    one = run_study(study_dir / "study.toml")
    (study_dir / "results.jsonl").unlink()
    two = run_study(study_dir / "study.toml", workers=2)
    assert same_records(one, two)
    lines = (study_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(one)  # no cell ran twice
    assert len({json.loads(ln)["record_id"] for ln in lines}) == len(one)


def test_an_interrupted_study_resumes_to_the_same_records(study_dir):
    full = run_study(study_dir / "study.toml")
    out = study_dir / "results.jsonl"
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:17]) + lines[17][:40])  # 17 cells kept, one torn mid-write
    status = study_status(study_dir / "study.toml")
    assert (status.total, status.done, status.todo) == (len(full), 17, len(full) - 17)
    assert status.seconds_left is not None and status.seconds_left > 0
    again = run_study(study_dir / "study.toml")
    assert same_records(again, full)
    assert len(out.read_text().splitlines()) == len(full)
    assert study_status(study_dir / "study.toml").todo == 0


def test_a_second_writer_of_the_results_file_is_refused(study_dir):
    out = study_dir / "results.jsonl"
    with writer_lock(str(out), ["results"]), pytest.raises(StoreBusyError) as err:
        run_study(study_dir / "study.toml")
    assert f"results file {out}" in str(err.value) and "another process" in str(err.value)
    assert not out.exists()


def test_a_backbone_absent_from_one_dataset(study_dir):
    make_study_store(study_dir / "four.zarr", "four", missing_b=True)
    text = (study_dir / "study.toml").read_text()
    text += '[[datasets]]\nstore = "four.zarr"\ndataset = "four"\n'
    (study_dir / "study.toml").write_text(text)
    with pytest.raises(InvalidDataError, match="four") as err:
        run_study(study_dir / "study.toml")
    assert "'b'" in str(err.value) or " b " in str(err.value), err.value
    assert not (study_dir / "results.jsonl").exists()
    (study_dir / "study.toml").write_text(
        text.replace('name = "toy"', 'name = "toy"\non_missing = "skip"')
    )
    records = run_study(study_dir / "study.toml")
    skipped = [r for r in records if r.status == "skipped"]
    assert {(r.dataset, r.feature_name) for r in skipped} == {("four", "b"), ("four", "a+b")}
    assert {r.feature_name for r in records if r.dataset == "four" and r.computed} == {"a"}


BAD = [
    ("[study]\nnmae = 'x'\n", "[study].nmae: unknown key"),
    ("[[datasets]]\nstore = 'nope.zarr'\ndataset = 'one'\n", "nope.zarr"),
    ("[[datasets]]\nstore = 'one.zarr'\ndataset = 'zzz'\n", "zzz"),
    ("[features]\nbackbones = ['a', 'c']\n", "'c'"),
    ("[[protocols]]\nmethods = ['knn']\nfractions = [0, 2]\n", "fractions: label fractions"),
    ("[[protocols]]\npreset = 'nielsen'\nmethods = ['knn']\n", "leave out methods"),
    ("[[protocols]]\nmethods = ['knn', 'bogus']\nshots = [1]\n", "'bogus'"),
    ("[options]\nk = 0\n", "[options]: k must be"),
]


@pytest.mark.parametrize(("edit", "message"), BAD)
def test_a_malformed_study_file_is_one_line_before_any_work(study_dir, edit, message):
    path = study_dir / "study.toml"
    base = path.read_text()
    section = edit.split("\n")[0]
    if section in ("[study]", "[features]", "[options]"):  # replace that table
        head, _, rest = base.partition(section + "\n")
        body_end = rest.find("\n[")
        base = head + rest[body_end + 1 :] if body_end >= 0 else head
        if section == "[study]":
            edit = edit + "seeds = 2\n"
    elif section == "[[datasets]]":
        base = base.split("[[datasets]]")[0] + "[features]" + base.split("[features]")[1]
    elif section == "[[protocols]]":
        base = base.split("[[protocols]]")[0]
    path.write_text(base + edit)
    result = runner.invoke(app, ["study", "run", str(path)])
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (study_dir / "results.jsonl").exists()


def test_study_cli_runs_and_shows(study_dir):
    path = study_dir / "study.toml"
    shown = runner.invoke(app, ["study", "show", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["total"] == 72 and json.loads(shown.output)["done"] == 0
    ran = runner.invoke(app, ["study", "run", str(path)])
    assert ran.exit_code == 0, ran.output
    assert "one" in ran.output and "three" in ran.output and "72 records" in ran.output
    status = json.loads(runner.invoke(app, ["study", "show", str(path), "--json"]).output)
    assert (status["done"], status["todo"]) == (72, 0)
    assert read_study(path).seeds == (0, 1)

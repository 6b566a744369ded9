"""One record type, one reader and writer, one torn-line rule; options checked when made; one
name resolver for every command that takes -b."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore.analyze.records import AnalysisResult, read_records
from embedstore.cli.main import app
from embedstore.errors import InvalidDataError
from embedstore.probes.method import method_names
from embedstore.probes.options import ProbeOptions
from embedstore.results.records import ProbeResult, read_jsonl, write_jsonl
from tests.conftest import write_embeddings
from tests.engine.conftest import make_study_store

runner = CliRunner()


def _record(i: int) -> ProbeResult:
    return ProbeResult(
        dataset="d", features=("a",), method="knn", protocol={}, metrics={},
        hyperparameters={}, selected_on="none", seed=i, n_train=1, n_test=1, record_id=f"r{i}",
    )  # fmt: skip


def test_a_torn_last_line_is_cut_but_a_whole_one_is_kept(tmp_path):
    out = tmp_path / "r.jsonl"
    write_jsonl([_record(0), _record(1)], out)
    whole = out.read_text()
    out.write_text(whole + json.dumps(_record(2).to_dict()))  # complete, newline lost
    assert [r.seed for r in read_jsonl(out)] == [0, 1, 2]
    write_jsonl([_record(3)], out)
    assert [r.seed for r in read_jsonl(out)] == [0, 1, 2, 3]
    out.write_text(whole + '{"dataset": "d", "feat')  # cut mid-write by a kill
    assert [r.seed for r in read_jsonl(out)] == [0, 1]
    write_jsonl([_record(4)], out)
    assert [r.seed for r in read_jsonl(out)] == [0, 1, 4]
    out.write_text(whole + "not json\n" + whole)  # damage in the middle is never skipped
    with pytest.raises(InvalidDataError, match=r"r.jsonl:3 is not an embedstore result record"):
        read_jsonl(out)


def test_analysis_and_probe_records_share_one_file(tmp_path):
    out = tmp_path / "r.jsonl"
    a = AnalysisResult("similarity", "d", ("a", "b"), "", {}, {"kind": "cka"}, 10)
    write_jsonl([_record(0), a, _record(1)], out)
    assert [r.seed for r in read_jsonl(out)] == [0, 1]
    assert read_records(out) == [a]
    assert json.loads(out.read_text().splitlines()[1])["kind"] == "analysis"


def test_results_that_are_not_text_or_a_folder_are_one_line(tmp_path):
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InvalidDataError, match="not UTF-8"):
        read_jsonl(tmp_path / "bin.jsonl")
    with pytest.raises(InvalidDataError, match="is a folder"):
        write_jsonl([_record(0)], tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("grid", "bogus", "grid must be one of ericsson, dinov2; got 'bogus'"),
        ("k", 0, "k must be a whole number >= 1; got 0"),
        ("n_way", 1, "n_way must be a whole number >= 2; got 1 (on the command line: --ways)"),
        ("temperature", -1.0, "temperature must be a positive number"),
        ("normalize", "l1", "normalize must be one of l2, standard, none"),
        ("preset", "nielsn", "nielsen"),
    ],
)
def test_options_are_checked_when_made(field, value, words):
    with pytest.raises(InvalidDataError) as err:
        ProbeOptions(**{field: value})
    assert words in str(err.value)


def test_method_help_comes_from_the_registry():
    for command, sweep in (("probe", False), ("sweep", True)):
        text = " ".join(runner.invoke(app, [command, "--help"]).output.split())
        for name in method_names(sweep=sweep):
            assert name in text, (command, name)


def test_info_resolves_a_short_name_as_probe_does(tmp_path):
    store = make_study_store(tmp_path / "s.zarr", "d")
    X = np.zeros((120, 4), dtype=np.float32)
    write_embeddings(store, "d", "mobilenet_v2.tv_in1k", X)
    full = runner.invoke(
        app, ["info", store.location, "-d", "d", "-b", "mobilenet_v2.tv_in1k", "--json"]
    )
    short = runner.invoke(app, ["info", store.location, "-d", "d", "-b", "mobilenet_v2", "--json"])
    assert full.exit_code == short.exit_code == 0, short.output
    assert json.loads(full.stdout) == json.loads(short.stdout)
    unknown = runner.invoke(app, ["info", store.location, "-d", "d", "-b", "resnet50"])
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output


def test_a_fraction_column_says_what_share_of_train_it_holds(tmp_path):
    store = make_study_store(tmp_path / "s.zarr", "d", n=20)  # 12 training rows, 3 classes
    from embedstore.engine.sweep import run_sweep
    from embedstore.results.table_formats import to_markdown
    from embedstore.results.tables import build_tables

    records = run_sweep(store, "d", [["a"]], fractions=[0.1, 1.0], seeds=2, methods="knn")
    (table,) = build_tables(records, metric="accuracy")
    text = to_markdown([table])
    share = records[0].labels["share"]
    assert share > 0.2  # one row per class at least: 3 of 12, not 10%
    assert f"{share * 100:.3g}% (10% asked)" in text and "100% (n=" in text


def test_a_cell_that_cannot_be_computed_is_recorded_and_the_run_goes_on(tmp_path):
    """The Nielsen power transform of 4 labelled rows overflows float64 on a test row (see
    tests/probes/test_nielsen_one_shot.py): those cells are 'not computed', the others run."""
    from embedstore import create_store

    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(16, 5))
    X[:4, 0] = [0.0, 0.0, 0.0, 1e-3]  # the 4 training rows, one per class
    X[4, 0] = -1e3  # a test row the transform cannot map
    store = create_store(tmp_path / "s.zarr")
    store.add_dataset(
        "d", ids=[f"s{i}" for i in range(16)], labels=np.r_[0:4, np.arange(12) % 4],
        split=np.r_[[0] * 4, [2] * 12].astype(np.uint8), task="multiclass",
        class_names=list("abcd"),
    )  # fmt: skip
    write_embeddings(store, "d", "bb", X.astype(np.float32))
    out = tmp_path / "r.jsonl"
    result = runner.invoke(
        app, ["sweep", store.location, "-d", "d", "-b", "bb", "--protocol", "nielsen",
              "--shots", "1", "--seeds", "1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    failed = [ln for ln in result.stderr.splitlines() if ln.startswith("not computed:")]
    assert len(failed) == 3 and all("bb (d, shots 1, seed 0)" in ln for ln in failed), failed
    records = read_jsonl(out)
    assert [r.status for r in records] == ["not computed"] * 3
    assert all("not finite in float64" in r.reason and not r.metrics for r in records)

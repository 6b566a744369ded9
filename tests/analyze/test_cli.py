"""`embedstore analyze ...` through the real CLI app: tables, records, figures, one-line errors."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.analyze import read_records
from embedstore.cli.main import app
from tests.conftest import make_dataset, write_embeddings

runner = CliRunner()


def _store(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=40)
    rng = np.random.default_rng(0)
    write_embeddings(store, "toy", "a", rng.normal(size=(40, 8)).astype(np.float32))
    write_embeddings(store, "toy", "b", rng.normal(size=(40, 6)).astype(np.float32))
    return tmp_path / "s.zarr"


def test_similarity_table_records_and_plot(tmp_path):
    path = _store(tmp_path)
    out, png = tmp_path / "r.jsonl", tmp_path / "cka.png"
    res = runner.invoke(
        app,
        ["analyze", "similarity", str(path), "-d", "toy", "--out", str(out), "--plot", str(png)],
    )
    assert res.exit_code == 0, res.output
    assert "linear / debiased" in res.output and "1.00 / 1.00" in res.output
    records = read_records(out)
    assert [r.features for r in records] == [("a", "a"), ("a", "b"), ("b", "b")]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_similarity_json(tmp_path):
    path = _store(tmp_path)
    res = runner.invoke(app, ["analyze", "similarity", str(path), "-d", "toy", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert {d["analysis"] for d in lines} == {"similarity"}
    assert 0.0 < lines[1]["metrics"]["cka"]["value"] < 1.0


def test_similarity_errors_are_one_line(tmp_path):
    path = _store(tmp_path)
    for args, expected in (
        (["-d", "nope"], "dataset 'nope' is not in store"),
        (["-d", "toy", "-b", "a", "-b", "zz"], "backbone 'zz' is not an array"),  # as probe -b
        (["-d", "toy", "-b", "a"], "at least two"),
        (["-d", "toy", "--split", "dev"], "split must be one of"),
    ):
        res = runner.invoke(app, ["analyze", "similarity", str(path), *args])
        assert res.exit_code == 1, res.output
        assert expected in res.output
        assert "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1, res.output


def test_help_lists_the_analyses():
    res = runner.invoke(app, ["analyze", "--help"])
    assert res.exit_code == 0
    commands = res.output.split("Commands")[1]
    for name in ("similarity", "invariance", "saliency"):
        assert name in commands


def _folder_store(tmp_path):
    """PNG files in class folders, extracted with the tiny backbones: the dataset records the
    folder as its source, so the image analyses find the images without --source."""
    from PIL import Image

    from embedstore import extract

    from .conftest import images

    root = tmp_path / "imgs"
    for i, img in enumerate(images(12)):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    path = tmp_path / "f.zarr"
    extract(path, dataset="toy", source=str(root), backbones=["flipavg.test", "region.test"],
            dtype="float32", workers=0, device="cpu", batch_size=4)  # fmt: skip
    return path, root


def test_invariance_table_resume_and_plot(tmp_path, tiny_backbones):
    path, _ = _folder_store(tmp_path)
    out, png = tmp_path / "inv.jsonl", tmp_path / "inv.png"
    args = ["analyze", "invariance", str(path), "-d", "toy", "-b", "flipavg.test",
            "--transform", "h_flip,rotation", "--images", "4", "--steps", "4",
            "--out", str(out), "--plot", str(png)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "h_flip" in res.output and "1.000 ± 0.000" in res.output
    assert [r.setting for r in read_records(out)] == ["h_flip", "rotation"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    again = runner.invoke(app, args)  # everything done: nothing appended
    assert again.exit_code == 0, again.output
    assert len(read_records(out)) == 2


def test_saliency_table_records_and_grid(tmp_path, tiny_backbones):
    path, _ = _folder_store(tmp_path)
    out, png = tmp_path / "sal.jsonl", tmp_path / "sal.png"
    res = runner.invoke(
        app,
        ["analyze", "saliency", str(path), "-d", "toy", "--images", "3", "--image-size", "16",
         "--mask", "3", "--stride", "2", "--examples", "2", "--out", str(out), "--plot", str(png)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "attentive diffusion" in res.output
    kinds = [r.analysis for r in read_records(out)]
    assert kinds.count("saliency_image") == 6 and kinds.count("saliency") == 2
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_image_analysis_errors_are_one_line(tmp_path, tiny_backbones):
    path, _ = _folder_store(tmp_path)
    for args, expected in (
        (["invariance", "-b", "flipavg.test", "--transform", "twirl"], "unknown transformation"),
        (
            ["invariance", "-b", "flipavg.test", "--source", str(tmp_path / "none")],
            "does not exist",
        ),
        (["invariance", "-b", "flipavg.test", "--weights", "oops"], "NAME=PATH"),
        (["saliency", "-b", "region.test", "--stride", "0"], "stride"),
        (["saliency", "-b", "nope.test"], "has not been extracted"),
        (["saliency", "-b", "region.test", "--device", "tpu"], "device must be"),
    ):
        res = runner.invoke(app, ["analyze", args[0], str(path), "-d", "toy", *args[1:]])
        assert res.exit_code == 1, res.output
        assert expected in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output

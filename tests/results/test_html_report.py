"""The HTML report rendered by a real browser (headless Debian chromium): the DOM it built from
the page and a screenshot, for a real probe run on a store and a three-dataset study with saved
per-image predictions."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.results.predictions import predictions_folder, write_predictions
from embedstore.results.records import write_jsonl

from ..conftest import make_dataset, write_embeddings
from .conftest import run_chromium, study_records

pytestmark = pytest.mark.slow


class _Dom(HTMLParser):
    """Counts of tags and the text of the DOM chromium dumped (its rendering, not our source)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_data(self, data):
        self.text.append(data)


def _render(chromium, page, tmp_path):
    dump = run_chromium(chromium, page, tmp_path, "--dump-dom").stdout
    dom = _Dom()
    dom.feed(dump)
    shot = tmp_path / "shot.png"
    run_chromium(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400")
    return dom, " ".join(dom.text), shot


def _not_blank(png):
    img = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    dark = (img < 128).mean()  # text, table rules, figure lines
    assert img.shape[0] > 500 and img.std() > 10 and 0.002 < dark < 0.5, (img.std(), dark)


def _study(tmp_path):
    """Three datasets x three feature sets x 2 seeds; predictions saved for seed 0 of one."""
    rng = np.random.default_rng(0)
    values = {d: {"dino": 0.8 + rng.normal(0, .02), "swav": 0.75 + rng.normal(0, .02),
                  "supervised": 0.7 + rng.normal(0, .02)} for d in ("isic", "chexpert", "kather")}  # fmt: skip
    recs = study_records(values, seeds=(0, 1))
    recs += study_records({d: {f: v + 0.08 for f, v in row.items()} for d, row in values.items()},
                          seeds=(0, 1), fraction=1.0)  # fmt: skip
    out = []
    y = np.repeat([0, 1], 30)
    groups = np.repeat([f"p{i}" for i in range(20)], 3)
    folder = predictions_folder(tmp_path / "study.jsonl")
    for r in recs:
        rid = f"{r.dataset}.{r.feature_name}.{r.method}.s{r.seed}"
        caveats = {"small_test": 60} if r.dataset == "kather" else {}
        if r.dataset == "chexpert" and r.feature_name == "supervised":
            caveats = {"absent_classes": ["mass"]}
        out.append(replace(r, extra={"record_id": rid}, caveats=caveats))
        rid = f"{rid}.f{r.labels['fraction']}"
        out[-1] = replace(out[-1], extra={"record_id": rid})
        if r.dataset == "isic" and r.seed == 0 and r.labels["fraction"] == 0.1:
            strength = {"dino": 2.0, "swav": 1.2, "supervised": 0.5}[r.feature_name]
            s = strength * (y - 0.5) + rng.normal(0, 1, y.size)
            p1 = 1 / (1 + np.exp(-s))
            write_predictions(folder, rid, ids=[f"i{i}" for i in range(60)], groups=groups,
                              y_true=y, proba=np.c_[1 - p1, p1], class_names=["benign", "mel"])  # fmt: skip
    write_jsonl(out, tmp_path / "study.jsonl")
    return tmp_path / "study.jsonl"


def test_study_report_renders_every_table_and_figure_in_chromium(chromium, tmp_path):
    results = _study(tmp_path)
    page, figs = tmp_path / "report.html", tmp_path / "figs"
    res = CliRunner().invoke(app, ["report", str(results), "--html", str(page), "--latex",
                                   str(tmp_path / "t.tex"), "--markdown", str(tmp_path / "t.md"),
                                   "--figures", str(figs), "--compare", "swav:supervised"])  # fmt: skip
    assert res.exit_code == 0, res.output
    source = page.read_text()
    assert not re.search(r"<script|<link|@import|https?://(?!www\.w3\.org)", source)  # offline
    dom, text, shot = _render(chromium, page, tmp_path)
    assert dom.tags["table"] >= 5 and dom.tags["svg"] >= 2 and dom.tags["figure"] >= 2
    for expected in ("Study table", "isic", "chexpert", "kather", "average rank",
                     "Friedman chi²", "Critical-difference diagram", "dino − swav",
                     "swav − supervised", "DeLong p", "McNemar exact p", "patient (20)",
                     "no test image of mass", "only 60 test rows", "Provenance",
                     "abababababababab", "torch 2.5"):  # fmt: skip
        assert expected in text, expected
    _not_blank(shot)
    assert r"\toprule" in (tmp_path / "t.tex").read_text()
    assert "| features | isic | chexpert | kather |" in (tmp_path / "t.md").read_text()
    names = sorted(p.name for p in figs.iterdir())
    assert "cd_logreg_10pct.pdf" in names and "curves_isic.svg" in names


def test_report_of_a_real_probe_run_renders(chromium, tmp_path):
    store = create_store(tmp_path / "demo.zarr")
    _, labels, _ = make_dataset(store, n=80)
    rng = np.random.default_rng(0)
    for b, signal in (("dino", 2.0), ("swav", 0.5)):
        X = (signal * labels[:, None] + rng.normal(size=(80, 8))).astype(np.float32)
        write_embeddings(store, "toy", b, X, provenance={"weights_sha256": "cd" * 32,
                                                         "weights_verified": False})  # fmt: skip
    out = tmp_path / "probe.jsonl"
    res = CliRunner().invoke(app, ["probe", str(tmp_path / "demo.zarr"), "-d", "toy", "-b",
                                   "dino", "-b", "swav", "-m", "knn", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    page = tmp_path / "probe.html"
    res = CliRunner().invoke(app, ["report", str(out), "--html", str(page)])
    assert res.exit_code == 0, res.output
    dom, text, shot = _render(chromium, page, tmp_path)
    assert dom.tags["table"] == 2  # study table, provenance (one dataset: no ranks, no CD diagram)
    assert "knn at all labels" in text and "only 16 test rows" in text
    assert "One dataset: ranks, the Friedman test and the critical-difference diagram" in text
    assert "cdcdcdcdcdcdcdcd" in text and "run with --predictions" in text
    _not_blank(shot)


def test_report_refuses_bad_input_with_one_message(tmp_path):
    results = _study(tmp_path)
    for args, msg in (
        (["--html", str(tmp_path / "r.txt")], "ending in .html"),
        (["--html", str(tmp_path / "r.html"), "--compare", "dino"], "joined by ':'"),
        (["--html", str(tmp_path / "r.html"), "--predictions", str(tmp_path / "none")],
         "does not exist"),
    ):  # fmt: skip
        res = CliRunner().invoke(app, ["report", str(results), *args])
        assert res.exit_code == 1 and msg in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r.html").exists()

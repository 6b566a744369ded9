"""Empty or unknown method/metric names, and refusals that must name what they refuse: each is one
line and exit 1 (never an empty table and exit 0, never "(e.g. )" or "(see above)")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.backbones import BackboneSpec, Preprocess, register, unregister
from embedstore.cli.main import app

from ..conftest import make_dataset, write_embeddings

runner = CliRunner()
SWEEP = ["--fractions", "0.5", "--seeds", "1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = create_store(tmp_path_factory.mktemp("choices") / "c.zarr")
    _, labels, _ = make_dataset(s, "d", n=60, classes=("a", "b", "c"))
    rng = np.random.default_rng(0)
    write_embeddings(s, "d", "a", (labels[:, None] + rng.normal(size=(60, 6))).astype("f4"))
    return s.location


@pytest.fixture(scope="module")
def records(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("records") / "r.jsonl"
    result = runner.invoke(
        app, ["sweep", store, "-d", "d", "-b", "a", *SWEEP, "--method", "knn", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return str(out)


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["probe", "--method", ""], ("give at least one method", "knn")),
        (["probe", "--method", "bogus"], ("'bogus'", "knn")),
        (["sweep", *SWEEP, "--method", ""], ("give at least one method", "knn")),
        (["sweep", *SWEEP, "--method", "bogus"], ("'bogus'", "knn")),
        (["sweep", *SWEEP, "--metric", "bogus"], ("--metric", "accuracy", "'bogus'")),
        (["sweep", *SWEEP, "--metric", ""], ("--metric", "accuracy", "got ''")),
    ],
    ids=["probe-method-empty", "probe-method-bogus", "sweep-method-empty", "sweep-method-bogus",
         "sweep-metric-bogus", "sweep-metric-empty"],
)  # fmt: skip
def test_empty_or_unknown_method_and_metric(store, args, needles):
    command, *rest = args
    _one_line_error(runner.invoke(app, [command, store, "-d", "d", "-b", "a", *rest]), *needles)


@pytest.mark.parametrize("metric", ["bogus", ""])
def test_report_refuses_an_empty_or_unknown_metric(records, metric):
    result = runner.invoke(app, ["report", records, "--metric", metric])
    _one_line_error(result, "--metric", "accuracy", f"got '{metric}'")


class _NaNNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * float("nan")


def test_nan_refusal_names_the_images(tmp_path):
    from PIL import Image

    for i, cls in enumerate(("a", "b", "a", "b")):
        (tmp_path / "img" / cls).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), (i * 40, 0, 0)).save(tmp_path / "img" / cls / f"[x]{i}.png")
    name = "nanconv.cli-test"
    register(BackboneSpec(name, "nanconv", 3, _NaNNet, None, dict, Preprocess(resize=24, crop=20)))
    try:
        result = runner.invoke(
            app,
            ["extract", str(tmp_path / "s.zarr"), "-d", "ds", "--source", str(tmp_path / "img")]
            + ["-b", name, "--workers", "0", "--device", "cpu"],
        )
    finally:
        unregister(name)
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    # every id shown, including ones that look like rich markup ('[x]0.png')
    assert "produced NaN" in line and "(e.g. )" not in line
    assert all(f"[x]{i}.png" in line for i in range(4)), line

"""`embedstore protocols` lists every preset with its paper; one preset in full; errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from embedstore.cli.main import app
from embedstore.probes.presets import PROTOCOLS

runner = CliRunner()


def test_lists_every_preset_with_its_paper():
    r = runner.invoke(app, ["protocols"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    for p in PROTOCOLS.values():
        assert p.name in r.output
        assert p.paper.split(",")[0] in r.output  # the authors
    assert "Bioengineering" in r.output and "sparsam" in r.output


def test_json_and_one_preset():
    r = runner.invoke(app, ["protocols", "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert [row["name"] for row in rows] == list(PROTOCOLS)
    r = runner.invoke(app, ["protocols", "nielsen"], env={"COLUMNS": "400"})
    assert r.exit_code == 0 and "no selection" in r.output and "1000" in r.output


def test_unknown_preset_exits_1_with_one_line():
    r = runner.invoke(app, ["protocols", "nielson"])
    assert r.exit_code == 1
    assert "did you mean 'nielsen'" in r.output and "Traceback" not in r.output

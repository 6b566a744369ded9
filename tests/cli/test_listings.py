"""What `embedstore backbones` and `embedstore protocols` list is true (issue 23, item 3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from embedstore.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_backbones_never_show_a_made_up_dim_or_licence():
    result = runner.invoke(app, ["backbones", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    for name, row in rows.items():
        assert row["dim"] is None or row["dim"] > 0, name
        if row["dim"] is None:  # a hub repo's config not on this machine
            assert row["preprocess"].startswith("unknown until downloaded"), name
            assert row["hub_id"] and row["hub_id"] in row["preprocess"]
        else:
            assert "None" not in row["preprocess"], (name, row["preprocess"])
    table = runner.invoke(app, ["backbones"], env={"COLUMNS": "300"}).output
    assert not re.search(r"│\s+0\s+│", table) and "None→None" not in table
    assert "│ ?" not in table  # an unknown licence says "not recorded"


def test_protocols_cite_only_what_a_user_can_open():
    from embedstore.probes.presets import PROTOCOLS

    result = runner.invoke(app, ["protocols", "--json"])
    assert result.exit_code == 0
    text = result.output + json.dumps([p.record() for p in PROTOCOLS.values()])
    assert "DESIGN.md" not in text and "offline" not in text
    for path in re.findall(r"\b([\w/]+\.md)\b", text):  # any document named must be here
        assert (ROOT / path).is_file(), path


def test_the_few_shot_ways_rule_is_stated_as_it_runs():
    from embedstore.probes.presets import PROTOCOLS
    from embedstore.probes.prototypes import WAYS_RULE, default_n_way

    assert PROTOCOLS["ericsson-fewshot"].hyperparameters["n_way"] == WAYS_RULE
    assert [default_n_way(k) for k in (2, 3, 4, 5, 9)] == [2, 3, 4, 5, 5]

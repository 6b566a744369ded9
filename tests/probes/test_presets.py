"""The protocol presets: one object each, with their papers, used by probe/sweep and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedstore.errors import InvalidDataError
from embedstore.probes.logistic import C_GRID_DINOV2, GRIDS, WD_GRID
from embedstore.probes.nielsen import NIELSEN_CLASSIFIERS, NIELSEN_SHOTS
from embedstore.probes.presets import PROTOCOLS, get_protocol

EXPECTED = {"ericsson-fewshot", "ericsson-linear", "dinov2-linear", "dino-knn", "truong", "nielsen"}


def test_every_preset_is_there_with_a_paper_and_a_source():
    assert set(PROTOCOLS) == EXPECTED
    for p in PROTOCOLS.values():
        assert p.paper and p.source and p.title and p.methods
        assert p.selection in ("none", "val", "train-cv")
        assert p.command in ("probe", "sweep")
        assert (p.command == "sweep") == bool(p.subsets)
        json.dumps(p.record())  # records store it as JSON


def test_presets_agree_with_the_code_that_runs_them():
    nielsen = get_protocol("nielsen")
    assert nielsen.subsets["shots"] == NIELSEN_SHOTS == (1, 5, 10, 25, 50, 100, 250, 500, 1000)
    assert nielsen.methods == tuple(f"nielsen-{c}" for c in NIELSEN_CLASSIFIERS)
    for name in NIELSEN_CLASSIFIERS:
        assert nielsen.hyperparameters[name] == NIELSEN_CLASSIFIERS[name]
    assert nielsen.selection == "none" and nielsen.metric == "balanced_accuracy"
    # the two 45-value grids the linear presets name
    np.testing.assert_allclose(GRIDS["ericsson"], 1 / WD_GRID)
    np.testing.assert_allclose(GRIDS["dinov2"], 10 ** np.linspace(-6, 5, 45))
    np.testing.assert_allclose(C_GRID_DINOV2, GRIDS["dinov2"])
    assert get_protocol("ericsson-linear").hyperparameters["grid"] == "ericsson"
    assert get_protocol("dinov2-linear").hyperparameters["grid"] == "dinov2"
    assert get_protocol("dino-knn").hyperparameters["k"] == 20


def test_unknown_preset_is_one_clear_error():
    with pytest.raises(InvalidDataError, match="did you mean 'nielsen'.*embedstore protocols"):
        get_protocol("nielson")

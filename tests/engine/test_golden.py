"""The engine reproduces, field for field, the records `probe` and `sweep` wrote before it.

``golden_records.json`` was written by ``python -m tests.engine.golden`` on the code before the
engine (commit "golden records"). Records may gain fields; every field the old records had must be
equal. DVME's attention weights (``extra``) are float32 sums whose last bits depend on the thread
count, so they are compared at float32 precision; everything else exactly.
"""

from __future__ import annotations

import json
import math

import pytest

from embedstore.results.records import json_default
from tests.engine.golden import GOLDEN, comparable, make_store, runs

EXPECTED = json.loads(GOLDEN.read_text())


def _same(want, got, path: str, tol: float) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        for k, v in want.items():
            assert k in got, f"{path}.{k} is missing"
            _same(v, got[k], f"{path}.{k}", tol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            _same(a, b, f"{path}[{i}]", tol)
    elif isinstance(want, float) and tol:
        assert math.isclose(want, got, rel_tol=tol, abs_tol=tol), f"{path}: {want} != {got}"
    else:
        assert want == got, f"{path}: {want!r} != {got!r}"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("golden") / "g.zarr")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_records_equal_those_before_the_engine(store, name):
    run = dict(runs())[name]
    got = [
        json.loads(json.dumps(comparable(r.to_dict()), default=json_default)) for r in run(store)
    ]
    want = EXPECTED[name]
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        tol = 1e-5 if w["method"] == "dvme" else 0.0
        _same({k: v for k, v in w.items() if k != "extra"}, g, f"{name}[{i}]", 0.0)
        _same(w["extra"], g["extra"], f"{name}[{i}].extra", tol)

"""Records of a grouped dataset carry patient-level intervals: the engine hands the test rows'
patients to every bootstrap, and the interval matches a plain numpy cluster bootstrap computed
on the saved per-image predictions."""

from __future__ import annotations

import numpy as np

from embedstore.engine.probe import ProbeOptions, evaluate_probes
from embedstore.results.predictions import predictions_folder, read_predictions
from tests.engine.conftest import make_study_store


def test_a_grouped_dataset_gets_a_patient_bootstrap(tmp_path):
    store = make_study_store(tmp_path / "s.zarr", "d", n=400, group=True)  # 2 rows per patient
    out = tmp_path / "r.jsonl"
    (record,) = evaluate_probes(
        store, "d", [["a"]], "knn", ProbeOptions(n_bootstrap=2000), out=str(out),
        predictions=True,
    )  # fmt: skip
    acc = record.metrics["accuracy"]
    assert acc["ci_unit"] == "patient" and acc["n_units"] == 40
    p = read_predictions(predictions_folder(out))[record.record_id]
    correct = (p.y_pred == p.y_true).astype(float)
    assert np.isclose(correct.mean(), acc["value"])
    patients, member = np.unique(p.groups, return_inverse=True)
    rng = np.random.default_rng(123)
    reps = []
    for _ in range(4000):  # whole patients, drawn with replacement
        drawn = rng.integers(0, len(patients), len(patients))
        rows = np.concatenate([np.flatnonzero(member == g) for g in drawn])
        reps.append(correct[rows].mean())
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert abs(lo - acc["ci_low"]) < 0.03 and abs(hi - acc["ci_high"]) < 0.03, (lo, hi, acc)

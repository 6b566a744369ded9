"""Few-shot's interval over test images resamples patients where the split records them."""

from __future__ import annotations

import numpy as np

from embedstore.probes.fewshot_ci import data_interval


def _patients(n_patients: int, per_patient: int, seed: int = 0):
    """Two classes of patients; a patient's images are near copies of one point (clustered)."""
    rng = np.random.default_rng(seed)
    y_pat = np.arange(n_patients) % 2
    centre = rng.normal(size=(n_patients, 8)) * 1.5 + y_pat[:, None] * 1.0
    X = np.repeat(centre, per_patient, axis=0) + rng.normal(
        scale=0.05, size=(n_patients * per_patient, 8)
    )
    y = np.repeat(y_pat, per_patient)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    return X.astype(np.float32), y, groups


def test_patient_resampling_is_wider_on_clustered_images_and_says_so():
    X, y, groups = _patients(24, 5)
    kw = dict(n_way=2, k_shot=3, n_query=5, n_resamples=60, n_episodes=60, seed=1)
    by_image = data_interval(X, y, **kw)
    by_patient = data_interval(X, y, groups=groups, **kw)
    assert by_image.ci_unit == "image" and by_image.n_units == 120
    assert by_patient.ci_unit == "patient" and by_patient.n_units == 24
    assert "24 patients (cluster bootstrap)" in by_patient.describe()
    assert (by_patient.high - by_patient.low) > 1.3 * (by_image.high - by_image.low)
    again = data_interval(X, y, groups=groups, **kw)
    assert (again.low, again.high) == (by_patient.low, by_patient.high)

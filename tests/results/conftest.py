"""Study records made in memory: feature sets x datasets x seeds, real ProbeResult objects."""

from __future__ import annotations

import numpy as np

from embedstore.report import ProbeResult


def study_records(values, *, seeds=(0, 1, 2), method="logreg", n_test=200, noise=0.01, extra=None):
    """values: {dataset: {feature set: mean accuracy}} -> one record per seed and cell."""
    rng = np.random.default_rng(0)
    out = []
    for d, row in values.items():
        for f, v in row.items():
            for s in seeds:
                x = float(np.clip(v + rng.normal(0, noise), 0, 1))
                out.append(
                    ProbeResult(
                        dataset=d,
                        features=tuple(f.split("+")),
                        method=method,
                        protocol={"name": "linear probe"},
                        metrics={"accuracy": {"value": x, "ci_low": x - 0.03, "ci_high": x + 0.03,
                                              "ci_unit": "patient", "n_units": 90,
                                              "ci_method": "percentile bootstrap over patients (cluster)"}},
                        hyperparameters={"C": 1.0},
                        selected_on="val",
                        seed=s,
                        n_train=100,
                        n_test=n_test,
                        provenance={f: {"weights_sha256": "ab" * 32, "verified": True,
                                        "software": {"torch": "2.5"}, "extracted": "2026-12-01"}},
                        labels={"fraction": 0.1, "n_labelled": 20, "per_class": {"x": 10, "y": 10},
                                "capped_classes": [], "subset_digest": f"{d}-{s}"},
                        **(extra or {}),
                    )
                )  # fmt: skip
    return out

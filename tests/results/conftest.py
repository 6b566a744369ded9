"""Study records made in memory (feature sets x datasets x seeds, real ProbeResult objects), and
the headless chromium the report tests render with."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from embedstore.results.records import ProbeResult


def study_records(
    values, *, seeds=(0, 1, 2), method="logreg", n_test=200, noise=0.01, extra=None, fraction=0.1
):
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
                        labels={"fraction": fraction, "n_labelled": 20, "per_class": {"x": 10, "y": 10},
                                "capped_classes": [], "subset_digest": f"{d}-{s}-{fraction}"},
                        **(extra or {}),
                    )
                )  # fmt: skip
    return out


CHROMIUM = "/usr/bin/chromium"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts real processes (a headless browser)")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; the report tests need a real browser and skip nothing without one."""
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        pytest.fail(
            "the HTML report tests need Debian's chromium at /usr/bin/chromium; install it with "
            "`apt-get update && apt-get install -y chromium` (the Makefile's test setup does)"
        )
    return path


def run_chromium(chromium: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless chromium on a local file, offline-minded flags, a throwaway profile."""
    args = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}", *extra, page.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)

"""A study under a real two-rank torchrun, and a study killed mid-run (SIGKILL) and rerun: both
end with the records of one uninterrupted process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedstore.results.records import read_jsonl
from embedstore.study import run_study
from tests.engine.conftest import same_records

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _study(study_dir: Path, *launch: str) -> list[str]:
    return [
        *launch,
        sys.executable,
        "-m",
        "embedstore.cli.main",
        "study",
        "run",
        str(study_dir / "study.toml"),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_two_torchrun_ranks_give_the_records_of_one_process(study_dir):
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc-per-node=2", "--no-python"]  # fmt: skip
    done = subprocess.run(
        _study(study_dir, *launch), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ranked = read_jsonl(study_dir / "results.jsonl")
    assert len(ranked) == 72 and len({r.record_id for r in ranked}) == 72  # no cell twice
    (study_dir / "results.jsonl").unlink()
    assert same_records(ranked, run_study(study_dir / "study.toml"))


def test_a_killed_study_reruns_to_the_records_of_an_uninterrupted_one(study_dir):
    path = study_dir / "study.toml"  # logreg's cells take long enough to be caught mid-run
    path.write_text(path.read_text().replace('"proto"', '"logreg"'))
    out = study_dir / "results.jsonl"
    proc = subprocess.Popen(
        _study(study_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill once some cells, not all, are written
        if out.exists() and len(out.read_bytes().splitlines()) >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = len(out.read_bytes().splitlines())
    assert 10 <= kept < 72
    resumed = run_study(study_dir / "study.toml")
    assert len(out.read_text().splitlines()) == 72
    out.unlink()
    assert same_records(resumed, run_study(study_dir / "study.toml"))

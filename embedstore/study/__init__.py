"""Studies: many datasets × feature sets × protocols as one resumable plan (``embedstore study``).

:func:`read_study` parses and checks a study file (:mod:`embedstore.study.spec` documents the
schema), :func:`run_study` runs or resumes it on the evaluation engine, :func:`study_status`
says what is done and what is left.
"""

from __future__ import annotations

from embedstore.study.run import StudyStatus, plan_study, run_study, study_status
from embedstore.study.spec import StudySpec, read_study

__all__ = ["StudySpec", "StudyStatus", "plan_study", "read_study", "run_study", "study_status"]

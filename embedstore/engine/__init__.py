"""The evaluation engine: plan → cells → records, one path for ``probe``, ``sweep`` and ``study``.

- :mod:`~embedstore.engine.plan`: a :class:`Plan` of :class:`Part` s, presets applied, cell ids;
- :mod:`~embedstore.engine.cells`: a part prepared and checked, its cells run into records;
- :mod:`~embedstore.engine.runner`: :func:`run_plan` - resume, the results-file lock, workers
  (:mod:`~embedstore.engine.workers`) and torchrun ranks.
"""

from __future__ import annotations

from embedstore.engine.plan import Part, Plan, apply_preset, cell_id, probe_part, sweep_part
from embedstore.engine.runner import run_plan

__all__ = ["Part", "Plan", "apply_preset", "cell_id", "probe_part", "run_plan", "sweep_part"]

"""The evaluation engine: plan → cells → records, one path for ``probe``, ``sweep`` and ``study``.

- :mod:`~embedstore.engine.plan`: a :class:`Plan` of :class:`Part` s, presets applied, cell ids;
- :mod:`~embedstore.engine.cells`: a part prepared and checked, its cells run into records;
- :mod:`~embedstore.engine.records`: a method's outcome on a cell -> its record (the one place
  records are assembled);
- :mod:`~embedstore.engine.runner`: :func:`run_plan` - resume, the results-file lock, workers
  (:mod:`~embedstore.engine.workers`) and torchrun ranks;
- :mod:`~embedstore.engine.probe` (``evaluate_probes``) and :mod:`~embedstore.engine.sweep`
  (``run_sweep``): plans of one part (the published presets they apply are
  :mod:`embedstore.probes.presets`).
"""

from __future__ import annotations

from embedstore.engine.plan import Part, Plan, apply_preset, cell_id, probe_part, sweep_part
from embedstore.engine.runner import run_plan

__all__ = ["Part", "Plan", "apply_preset", "cell_id", "probe_part", "run_plan", "sweep_part"]

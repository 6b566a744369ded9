"""The logistic probe's published regularisation grids (numpy only: options are checked against
them without importing the solvers).

- ``"ericsson"``: Ericsson et al. 2021, weight decays ``logspace(-6, 5, 45)``, C = 1 / wd;
- ``"dinov2"``: DINOv2's linear evaluation, C = ``logspace(-6, 5, 45)`` directly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["C_GRID_DINOV2", "GRIDS", "WD_GRID"]

WD_GRID = np.logspace(-6, 5, 45)  # Ericsson et al. weight decays; C = 1 / wd
C_GRID_DINOV2 = np.logspace(-6, 5, 45)  # DINOv2: C directly
GRIDS = {"ericsson": 1.0 / WD_GRID, "dinov2": C_GRID_DINOV2}

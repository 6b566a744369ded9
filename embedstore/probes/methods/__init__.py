"""The probe methods: every module of this package registers its methods on import.

Adding a method is one new module here: a :class:`~embedstore.probes.method.Method` subclass
with ``@register`` (its name, title, tuned hyper-parameter and grid, ``run(cell)``). The
registry imports every module of this package the first time methods are listed, so the CLI's
help, ``--method all``, the engine and the caveats pick it up without another file changing.

- :mod:`.core`: the protocols of Ericsson et al. and Anton et al. - nearest prototype, few-shot
  episodes, DINO's weighted kNN, the L2 logistic probe, the DVME fusion head;
- :mod:`.svm_nielsen`: an RBF SVM, and the three classifiers of Nielsen et al.'s preset.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["load_all"]


def load_all() -> tuple[str, ...]:
    """Import every method module of this package (each registers its methods); their names,
    in the order methods are listed (``core`` first, then alphabetical)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    names.sort(key=lambda n: n != "core")
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return tuple(names)

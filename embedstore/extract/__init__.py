"""The extraction pipeline: images from a source -> backbones -> one embeddings array per
backbone in the store, written chunk by chunk so that an interrupted run resumes bit-identically.

The parts: ``_check`` (what is checked before torch is imported), ``_prepare`` (options, device, backbones and weights, all checked before the store is
touched), ``_world`` (a single process, or the ranks of a torchrun job), ``_plan`` (chunks still
to do, grouped into passes and split over ranks), ``_pass`` (one decode per image for every
backbone of a pass, forward passes, background chunk writer) ``_run`` (the heavy half) and ``_api`` (:func:`extract`:
checks, then ``_run``).

``embedstore.extract`` is both this package and, in ``embedstore``'s namespace, the function;
the package is callable too, so ``embedstore.extract(...)`` works however it was imported.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from embedstore.extract._api import extract
from embedstore.extract._check import default_workers, is_main_process
from embedstore.extract._records import ExtractProgress, ExtractSummary

__all__ = ["ExtractProgress", "ExtractSummary", "default_workers", "extract", "is_main_process"]


class _CallablePackage(types.ModuleType):
    """Calling the package calls :func:`extract` (the package shares the function's name)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

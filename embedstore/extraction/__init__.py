"""The extraction pipeline: images from a source -> backbones -> one embeddings array per
backbone in the store, written chunk by chunk so that an interrupted run resumes bit-identically.

The parts: ``_check`` (what is checked before torch is imported), ``_prepare`` (options, device, backbones and weights, all checked before the store is
touched), ``_world`` (a single process, or the ranks of a torchrun job), ``_plan`` (chunks still
to do, grouped into passes and split over ranks), ``_pass`` (one decode per image for every
backbone of a pass, forward passes, background chunk writer) ``_run`` (the heavy half) and ``_api`` (:func:`extract`:
checks, then ``_run``).
``embedstore.extract`` (the public name) is :func:`extract` of this package.
"""

from __future__ import annotations

from embedstore.extraction._api import extract
from embedstore.extraction._check import default_workers, is_main_process
from embedstore.extraction._records import ExtractProgress, ExtractSummary

__all__ = ["ExtractProgress", "ExtractSummary", "default_workers", "extract", "is_main_process"]

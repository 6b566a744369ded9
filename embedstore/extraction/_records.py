"""What extraction reports: progress after every batch, a summary per backbone at the end."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExtractProgress", "ExtractSummary"]


@dataclass(frozen=True)
class ExtractProgress:
    """Passed to the ``progress`` callback after every batch (and once when a backbone starts).

    ``done`` counts rows of this backbone in the store or computed by this run, counted over
    every rank of a torchrun job, of ``total``; ``start_row`` is how many were done before this
    run began (non-zero when resuming). Only rank 0 calls the callback.
    """

    backbone: str
    index: int
    n_backbones: int
    done: int
    total: int
    start_row: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        """Images processed by this run per second of this backbone's pass."""
        return (self.done - self.start_row) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ExtractSummary:
    """What one backbone's extraction did. ``status`` is 'written', 'resumed' or 'skipped'.

    ``start_row`` is the number of rows already done when this run began; ``rows_extracted``
    the rows this run computed, over all ranks; ``n_missing`` the rows recorded as unreadable in
    the whole array; ``seconds`` the wall time of the pass that ran it; ``world_size`` the
    number of processes (torchrun ranks); ``pass_index`` which pass over the images computed it
    (backbones of one pass share each decoded image).
    """

    dataset: str
    backbone: str
    rows: int
    dim: int
    dtype: str
    status: str
    start_row: int
    rows_extracted: int
    n_missing: int
    seconds: float
    writer_seconds: float
    device: str
    world_size: int = 1
    pass_index: int = 0

    @property
    def images_per_s(self) -> float:
        """Images extracted by this run per second (0 for a skipped backbone)."""
        return self.rows_extracted / self.seconds if self.seconds > 0 else 0.0

"""Probe options: the protocol parameters every method reads, checked when they are made.

Store-free (numpy only), so that the command line can check options and list methods
without importing the heavy parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedstore.errors import InvalidDataError

__all__ = ["NORMALIZATIONS", "ProbeOptions"]

NORMALIZATIONS = ("l2", "standard", "none")


@dataclass(frozen=True)
class ProbeOptions:
    """Protocol parameters; the defaults are the literature's (the protocols' papers, listed by
    ``embedstore protocols``). Every field is checked when the options are made: a bad value
    raises one :class:`InvalidDataError` naming the parameter, what it takes and what it got."""

    seed: int = 0
    device: str = "auto"  # "cpu", "cuda", "cuda:N" or "auto" (resolved by the orchestrators)
    normalize: str = "l2"
    grid: str = "ericsson"
    k: int = 20
    temperature: float = 0.07
    n_way: int | None = None
    k_shot: int = 20
    n_query: int = 15
    n_episodes: int = 600
    n_bootstrap: int = 1000
    class_weight: str | None = None  # None or "balanced" (methods with ``class_weighted``)
    preset: str | None = None  # the protocol preset (embedstore.probes.presets) a run follows

    def __post_init__(self) -> None:
        from embedstore.probes.grids import GRIDS

        def bad(name: str, expected: str) -> InvalidDataError:
            return InvalidDataError(
                f"{name} must be {expected}; got {getattr(self, name)!r} "
                f"(on the command line: --{_FLAGS.get(name, name.replace('_', '-'))})"
            )

        def whole(name: str, low: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise bad(name, f"a whole number >= {low}")

        whole("seed", 0)
        whole("k", 1)
        whole("k_shot", 1)
        whole("n_query", 1)
        whole("n_episodes", 1)
        whole("n_bootstrap", 0)
        if self.n_way is not None:
            whole("n_way", 2)
        if self.normalize not in NORMALIZATIONS:
            raise bad("normalize", f"one of {', '.join(NORMALIZATIONS)}")
        if self.grid not in GRIDS:
            raise bad("grid", f"one of {', '.join(GRIDS)}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf"):
            raise bad("temperature", "a positive number")
        if self.class_weight not in (None, "balanced"):
            raise bad("class_weight", "None or 'balanced'")
        if not isinstance(self.device, str):
            raise bad("device", "cpu, cuda, cuda:N or auto")
        if self.preset is not None:
            from embedstore.probes.presets import get_protocol

            get_protocol(self.preset)  # an unknown name lists the presets


_FLAGS = {"k_shot": "shots", "n_way": "ways", "n_episodes": "episodes", "n_bootstrap": "bootstrap"}

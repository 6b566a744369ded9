"""`evaluate_probes`: every requested method on every feature set, on the full labels, as records.

Each method runs its published protocol (:mod:`embedstore.probes.methods`; the protocol is named
in every record): proto and knn learn from train+val with their fixed settings (k = 20); logreg
chooses C on the validation split (the dataset's own, else a fixed-seed 20% of train) and is
refit on train+val; dvme early-stops on it; fewshot draws its episodes once from the test split's
labels, shared by every feature set (paired). Everything is scored on the test split.

With ``methods="all"`` a method that cannot run on this data (e.g. 20-shot episodes on a small
test split) is skipped with one line saying why, and every feasible one still runs; the protocol
is never changed to fit (no fewer shots).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from embedstore.probes.options import ProbeOptions
from embedstore.probes.selection import selection_split
from embedstore.results.records import ProbeResult
from embedstore.store import Store

__all__ = ["ProbeOptions", "evaluate_probes", "selection_split"]


def evaluate_probes(
    store: Store,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    methods: Sequence[str] | str = "all",
    options: ProbeOptions | None = None,
    *,
    progress: Callable[[str, str], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    protocol: str | None = None,
    out: str | None = None,
    predictions: bool = False,
) -> list[ProbeResult]:
    """Run each method on each feature set; one record per (feature set, method).

    A plan of one part on the engine (:mod:`embedstore.engine`), with the setting "all labels".

    Args:
        feature_sets: single backbones and fusions, e.g. [["a"], ["b"], ["a", "b"]].
        methods: names (a list or a comma list), or 'all' (those that apply to the task; DVME
            on fusions only: on one backbone it is an MLP, not a fusion head).
        progress: called with (feature set name, method) as each evaluation finishes.
        on_skip: under 'all', called with (method, reason) for each method that cannot run on
            this data (default: a warning); a method asked for by name raises instead.
        protocol: a probe preset (``embedstore protocols``: ericsson-fewshot, ericsson-linear,
            dinov2-linear, dino-knn): its methods and options; records name it.
        out: a JSON-lines results file: records appended as they finish, cells already there
            not run again.
        predictions: keep per-image test predictions beside ``out`` (see
            :func:`embedstore.engine.run_plan`).
    """
    from embedstore.engine import Plan, probe_part, run_plan

    part = probe_part(store, dataset, feature_sets, methods, options, protocol=protocol)
    report = None
    if progress is not None:

        def report(done: int, total: int, text: str) -> None:
            method, _, rest = text.partition(" on ")
            progress(rest.split(" (")[0], method)

    return run_plan(
        Plan((part,)), out=out, progress=report, on_skip=on_skip, predictions=predictions
    )

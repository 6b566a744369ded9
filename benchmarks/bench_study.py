"""A study on the engine: its overhead over its cells, two workers against one, and against the
per-cell scikit-learn loop a user would otherwise write.

The study (issue 27's shape): 3 datasets × 3 feature sets (two backbones and their fusion) × kNN
and logistic × 3 label fractions × 5 seeds = 270 cells, C and k chosen by CV inside each labelled
subset. Printed, from one run on one machine:

1. the study (one process) against ``sweep`` run once per dataset: wall times, and the engine's
   overhead over the sum of its cells' own times (aim ≤ 5%);
2. ``--workers 2`` against one process (aim ≥ 1.7× on two idle cores);
3. the scikit-learn loop (``benchmarks/bench_sweep.py``'s ``sklearn_cell``), measured on
   ``--baseline-seeds`` seeds of one feature set of one dataset and extrapolated to every cell.

    python benchmarks/bench_study.py [--n 3000] [--dim 1280] [--seeds 5] [--baseline-seeds 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import make_store, sklearn_cell  # noqa: E402

from embedstore import open_store  # noqa: E402
from embedstore.data.subsets import labelled_subsets  # noqa: E402
from embedstore.engine.sweep import run_sweep  # noqa: E402
from embedstore.probes.features import load_feature_sets  # noqa: E402
from embedstore.probes.grids import GRIDS  # noqa: E402
from embedstore.probes.options import ProbeOptions  # noqa: E402
from embedstore.probes.selection import cv_folds  # noqa: E402
from embedstore.study import run_study  # noqa: E402

FRACTIONS = (0.01, 0.1, 1.0)
SETS = [["dino"], ["swav"], ["dino", "swav"]]


def study_file(folder: Path, names: list[str], seeds: int) -> Path:
    datasets = "".join(f'[[datasets]]\nstore = "{n}.zarr"\ndataset = "{n}"\n' for n in names)
    text = f"""
        [study]
        name = "bench"
        seeds = {seeds}
        out = "results.jsonl"
        [options]
        n_bootstrap = 0
        [features]
        backbones = ["dino", "swav"]
        fusions = [["dino", "swav"]]
        [[protocols]]
        methods = ["knn", "logreg"]
        fractions = {list(FRACTIONS)}
        """
    path = folder / "study.toml"
    path.write_text(textwrap.dedent(text) + datasets)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--baseline-seeds", type=int, default=1)
    args = ap.parse_args()
    names = ["chest", "derm", "path"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k, name in enumerate(names):
            make_store(folder / f"{name}.zarr", args.n, args.dim, seed=k, dataset=name)
        path = study_file(folder, names, args.seeds)
        out = folder / "results.jsonl"

        t = time.perf_counter()
        for name in names:
            run_sweep(
                open_store(folder / f"{name}.zarr"),
                name,
                SETS,
                fractions=FRACTIONS,
                seeds=args.seeds,
                methods="knn,logreg",
                options=ProbeOptions(n_bootstrap=0),
            )
        t_sweeps = time.perf_counter() - t

        t = time.perf_counter()
        records = run_study(path)
        t_one = time.perf_counter() - t
        cells = sum(r.seconds for r in records)
        out.unlink()

        t = time.perf_counter()
        run_study(path, workers=2)
        t_two = time.perf_counter() - t

        print(
            f"study: {len(records)} cells (3 datasets x 3 feature sets x knn+logreg x "
            f"{len(FRACTIONS)} fractions x {args.seeds} seeds), n={args.n}, dim={args.dim}"
        )
        print(f"  sweep once per dataset:   {t_sweeps:7.1f} s")
        print(f"  study, one process:       {t_one:7.1f} s  (sum of its cells {cells:.1f} s)")
        print(
            f"  engine overhead over its cells: {100 * (t_one - cells) / cells:+.1f}% "
            f"(reading features, checking the plan, writing records); study / sweeps "
            f"{t_one / t_sweeps:.2f}x"
        )
        print(f"  study, --workers 2:       {t_two:7.1f} s  (speed-up {t_one / t_two:.2f}x)")

        store = open_store(folder / "chest.zarr")
        data, fsets = load_feature_sets(store, "chest", SETS[:1])
        X, y = fsets[0].X, data.labels
        pool, test = data.indices("train"), data.indices("test")
        measured = 0.0
        for s in range(args.baseline_seeds):
            for sub in labelled_subsets(y, pool, seed=s, fractions=FRACTIONS):
                folds = cv_folds(y[sub.positions], None, seed=0)
                if folds:
                    times, _, _ = sklearn_cell(
                        X, y, sub.positions, test, folds, np.asarray(GRIDS["ericsson"])
                    )
                    measured += sum(times.values())
        est = measured / args.baseline_seeds * args.seeds * len(SETS) * len(names)
        print(
            f"  scikit-learn per-cell loop: {measured:.1f} s measured on {args.baseline_seeds} "
            f"seed(s) of one feature set of one dataset; extrapolated to the study: {est:.0f} s "
            f"({est / t_one:.1f}x the study in one process)"
        )


if __name__ == "__main__":
    main()

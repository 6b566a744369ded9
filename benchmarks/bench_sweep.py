"""Label-efficiency sweep on a demo-shaped synthetic store: embedstore vs a per-cell scikit-learn loop.

Shape of the Br35H demo: 3,000 images (binary), 2,100 train / 450 val / 450 test, two backbones of
1,280 dims (float16 in the store) and their fusion: 3 feature sets × 3 fractions × 5 seeds ×
(kNN, logistic), C and k chosen by 5-fold CV inside each labelled subset.

The baseline is what a user would otherwise write, per cell, on the same subsets and folds:
``GridSearchCV(KNeighborsClassifier(cosine, DINO weights exp(sim/0.07)))`` over the same k grid,
and scikit-learn's ``LogisticRegression(lbfgs, warm_start=True)`` looped over the same 45 Cs in
each fold (the published procedure), then refit at the chosen C. The full baseline takes many
minutes, so it runs on ``--baseline-seeds`` seeds of one feature set and is extrapolated to all
cells (the extrapolation is printed as such).

    /work/venv/bin/python benchmarks/bench_sweep.py [--baseline-seeds 1] [--n 3000] [--dim 1280]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedstore import create_store  # noqa: E402
from embedstore.data.subsets import labelled_subsets  # noqa: E402
from embedstore.engine.probe import ProbeOptions  # noqa: E402
from embedstore.engine.sweep import KNN_K_GRID, cv_folds, run_sweep  # noqa: E402
from embedstore.probes.features import load_feature_sets  # noqa: E402
from embedstore.probes.logistic import GRIDS  # noqa: E402


def make_store(path: Path, n: int, dim: int, seed: int = 0, dataset: str = "demo"):
    """A demo-shaped binary dataset (about 70/15/15) with two float16 backbones."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    split = rng.choice(3, size=n, p=[0.7, 0.15, 0.15]).astype(np.uint8)
    store = create_store(path)
    store.add_dataset(
        dataset,
        ids=[f"img_{i:05d}.jpg" for i in range(n)],
        labels=y,
        split=split,
        task="binary",
        class_names=["no_tumor", "tumor"],
    )
    for b, strength in (("resnet50.dino", 0.35), ("resnet50.swav", 0.3)):
        basis = rng.normal(size=(32, dim))
        z = rng.normal(size=(n, 32)) + strength * np.outer(2 * y - 1, rng.normal(size=32))
        X = np.abs(z @ basis + 3.0 * rng.normal(size=(n, dim))).astype(np.float16)  # ReLU-like
        w = store.writer(dataset, b, dim=dim, dtype="float16")
        w.write(X)
        w.finish({"name": b})
    return store


def sklearn_cell(X, y, S, test, task_folds, Cs):
    """One cell the scikit-learn way: CV over the k grid and over the C grid, refit, score."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier

    times = {}
    folds = task_folds
    t = time.perf_counter()
    grid = [k for k in KNN_K_GRID if k <= min(len(tr) for tr, _ in folds)]
    knn = KNeighborsClassifier(
        metric="cosine", algorithm="brute", weights=lambda d: np.exp((1 - d) / 0.07)
    )
    gs = GridSearchCV(knn, {"n_neighbors": grid}, cv=folds).fit(X[S], y[S])
    acc_knn = gs.score(X[test], y[test])
    times["knn"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = np.zeros(len(Cs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tr, va in folds:
            clf = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=1000)
            for i, C in enumerate(Cs):
                clf.set_params(C=C).fit(X[S[tr]], y[S[tr]])
                scores[i] += clf.score(X[S[va]], y[S[va]]) * len(va)
        best = Cs[int(np.argmax(scores))]
        clf = LogisticRegression(solver="lbfgs", C=best, max_iter=1000).fit(X[S], y[S])
    acc_lr = clf.score(X[test], y[test])
    times["logreg"] = time.perf_counter() - t
    return times, acc_knn, acc_lr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--baseline-seeds", type=int, default=1)
    args = ap.parse_args()
    fractions = [0.01, 0.1, 1.0]
    sets = [["resnet50.dino"], ["resnet50.swav"], ["resnet50.dino", "resnet50.swav"]]
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "demo.zarr", args.n, args.dim)
        opts = ProbeOptions(n_bootstrap=0)
        t = time.perf_counter()
        results = run_sweep(
            store,
            "demo",
            sets,
            fractions=fractions,
            seeds=args.seeds,
            methods=("knn", "logreg"),
            options=opts,
        )
        t_es = time.perf_counter() - t
        n_cells = len(results)
        print(
            f"embedstore sweep: {n_cells} cells (3 feature sets x {len(fractions)} fractions x "
            f"{args.seeds} seeds x knn+logreg) in {t_es:.1f} s, including feature loading"
        )

        data, fsets = load_feature_sets(store, "demo", sets[:1])
        X, y = fsets[0].X, data.labels
        pool, test = data.indices("train"), data.indices("test")
        Cs = np.asarray(GRIDS["ericsson"])
        base = {"knn": [], "logreg": []}
        for s in range(args.baseline_seeds):
            for sub in labelled_subsets(y, pool, seed=s, fractions=fractions):
                folds = cv_folds(y[sub.positions], None, seed=0)
                if not folds:
                    continue
                times, acc_knn, acc_lr = sklearn_cell(X, y, sub.positions, test, folds, Cs)
                for m in base:
                    base[m].append(times[m])
                ours = {
                    r.method: r.metrics["accuracy"]["value"]
                    for r in results
                    if r.feature_name == "resnet50.dino"
                    and r.seed == s
                    and r.labels["fraction"] == sub.value
                }
                print(
                    f"  sklearn cell dino {sub.value:>5} seed {s}: knn {times['knn']:.2f} s "
                    f"(acc {acc_knn:.3f}, ours {ours['knn']:.3f}), logreg {times['logreg']:.2f} s "
                    f"(acc {acc_lr:.3f}, ours {ours['logreg']:.3f})"
                )
        per_seed = sum(base["knn"]) + sum(base["logreg"])
        measured = per_seed
        est = per_seed / args.baseline_seeds * args.seeds * len(sets)
        print(
            f"scikit-learn per-cell loop: measured {measured:.1f} s for {args.baseline_seeds} "
            f"seed(s) of one feature set; extrapolated to all {n_cells} cells: {est:.0f} s "
            "(fusion cells are 2x wider, so this underestimates)"
        )
        print(f"ratio (extrapolated sklearn / embedstore): {est / t_es:.1f}x")


if __name__ == "__main__":
    main()

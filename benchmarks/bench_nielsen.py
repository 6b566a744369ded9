"""The Nielsen et al. 2023 protocol on a demo-shaped store: embedstore vs the authors' code path.

Shape of the Br35H demo: 3,000 images (binary), 70/15/15 split, one backbone of 1,280 dims
(float16 in the store). The protocol (``--protocol nielsen``): 1, 5, 10, 25, 50, 100, 250, 500,
1000 labelled samples per class × seeds; on each labelled subset a Yeo-Johnson PowerTransformer
-> PCA -> SVM / kNN / logistic regression with fixed settings, scored on the test split.

The baseline is the authors' ``fit_classifier`` (github.com/IPMI-ICNS-UKE/sparsam,
``reproducability/reproduce_results.py``): for each subset and each classifier a scikit-learn
``Pipeline([PowerTransformer(), PCA(), classifier])`` fitted from scratch, one subset at a time,
on the same subsets. It takes minutes per seed, so it runs on ``--baseline-seeds`` seeds and is
scaled to all seeds (printed as such); balanced accuracies are compared on the cells both ran.

    .venv/bin/python benchmarks/bench_nielsen.py [--seeds 5] [--baseline-seeds 1] [--n 3000]
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
from embedstore.engine.sweep import run_sweep  # noqa: E402
from embedstore.probes.nielsen import NIELSEN_SHOTS  # noqa: E402
from embedstore.probes.options import ProbeOptions  # noqa: E402


def make_store(path: Path, n: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    split = rng.choice(3, size=n, p=[0.7, 0.15, 0.15]).astype(np.uint8)
    store = create_store(path)
    store.add_dataset(
        "demo",
        ids=[f"img_{i:05d}.jpg" for i in range(n)],
        labels=y,
        split=split,
        task="binary",
        class_names=["no_tumor", "tumor"],
    )
    basis = rng.normal(size=(32, dim))
    z = rng.normal(size=(n, 32)) + 0.35 * np.outer(2 * y - 1, rng.normal(size=32))
    X = np.abs(z @ basis + 3.0 * rng.normal(size=(n, dim))).astype(np.float16)  # ReLU-like
    w = store.writer("demo", "mobilenet_v2.tv_in1k", dim=dim, dtype="float16")
    w.write(X)
    w.finish({"name": "mobilenet_v2.tv_in1k"})
    return store


def authors_fit_classifier(X_train, y_train, X_test, n_classes: int) -> dict[str, np.ndarray]:
    """sparsam's fit_classifier for one subset: one Pipeline per classifier, fitted from scratch."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PowerTransformer
    from sklearn.svm import SVC

    classifiers = {  # reproducability/parameter.py; k = 5 x classes as fit_classifier sets it
        "svm": SVC(class_weight="balanced", C=1, gamma="scale", cache_size=10000, max_iter=-1,
                   probability=True, break_ties=True, kernel="rbf", random_state=0),
        "knn": KNeighborsClassifier(weights="distance",
                                    n_neighbors=min(5 * n_classes, len(X_train))),
        "logreg": LogisticRegression(class_weight="balanced", C=2.5, max_iter=10000),
    }  # fmt: skip
    out = {}
    for name, clf in classifiers.items():
        pipe = Pipeline([("standardizer", PowerTransformer()), ("pca", PCA()), ("classifier", clf)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(X_train, y_train)
            out[name] = pipe.predict_proba(X_test).argmax(axis=1)
    return out


def svm_solver_check(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> None:
    """The SVM probe (libsvm on a BLAS kernel) against SVC(kernel="rbf") on 1000 per class."""
    from sklearn.svm import SVC

    from embedstore.probes.svm import SVMProbe

    S = np.concatenate([train[y[train] == c][:1000] for c in np.unique(y)])
    kw = dict(C=1.0, class_weight="balanced", probability=True, break_ties=True, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SVC(kernel="rbf", gamma="scale", **kw).fit(X[S], y[S])
        p_ref = ref.predict_proba(X[test])
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = SVMProbe(**kw).fit(X[S], y[S])
    p_ours = ours.predict_proba(X[test])
    t_ours = time.perf_counter() - t0
    same = (p_ref.argmax(1) == p_ours.argmax(1)).mean()
    print(f"SVM, {len(S)} x {X.shape[1]} with Platt probabilities: SVC(rbf) {t_ref:.2f} s, "
          f"SVMProbe {t_ours:.2f} s ({t_ref / t_ours:.1f}x), same predictions on "
          f"{100 * same:.1f}% of test rows, max |proba diff| {np.abs(p_ref - p_ours).max():.1e}",
          flush=True)  # fmt: skip


def balanced_accuracy(y, pred) -> float:
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--baseline-seeds", type=int, default=1)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "demo.zarr", args.n, args.dim)
        X = store.embeddings("demo", "mobilenet_v2.tv_in1k")
        y, split = np.asarray(store.labels("demo")), np.asarray(store.split("demo"))
        train, test = np.flatnonzero(split == 0), np.flatnonzero(split == 2)
        svm_solver_check(X, y, train, test)
        t0 = time.perf_counter()
        records = run_sweep(
            store,
            "demo",
            [["mobilenet_v2.tv_in1k"]],
            protocol="nielsen",
            seeds=args.seeds,
            options=ProbeOptions(n_bootstrap=0),  # the authors' code computes no intervals
        )
        t_ours = time.perf_counter() - t0
        ours = {
            (r.method.removeprefix("nielsen-"), r.labels["shots"], r.seed): r.metrics[
                "balanced_accuracy"
            ]["value"]
            for r in records
        }
        print(f"  embedstore sweep --protocol nielsen: {t_ours:.1f} s", flush=True)

        t_base, gaps = 0.0, []
        for seed in range(args.baseline_seeds):
            for sub in labelled_subsets(y, train, seed=seed, shots=NIELSEN_SHOTS):
                S = sub.positions
                t1 = time.perf_counter()
                preds = authors_fit_classifier(X[S], y[S], X[test], n_classes=2)
                t_base += time.perf_counter() - t1
                for name, pred in preds.items():
                    ref = balanced_accuracy(y[test], pred)
                    gaps.append((abs(ref - ours[(name, sub.value, seed)]), name, sub.value))
                print(f"  baseline seed {seed}, {sub.value:>4} per class: {t_base:7.1f} s so far",
                      flush=True)  # fmt: skip
        t_base_all = t_base * args.seeds / args.baseline_seeds
    cells = len(records)
    print(f"Nielsen sweep, {cells} records ({len(NIELSEN_SHOTS)} settings x {args.seeds} seeds x 3 "
          f"classifiers), {args.n} x {args.dim}:")  # fmt: skip
    print(f"  embedstore sweep --protocol nielsen : {t_ours:8.1f} s")
    print(
        f"  authors' fit_classifier (sklearn)   : {t_base:8.1f} s for {args.baseline_seeds} seed(s)"
        f" -> {t_base_all:8.1f} s for {args.seeds} (scaled)"
    )
    print(f"  ratio: {t_base_all / t_ours:.1f}x faster")
    worst = max(gaps)
    within = sum(g[0] <= 0.005 for g in gaps)
    print(f"  balanced accuracy vs the authors' code: {within}/{len(gaps)} shared cells within "
          f"0.5 points; largest difference {100 * worst[0]:.2f} points ({worst[1]}, "
          f"{worst[2]} per class)")  # fmt: skip


if __name__ == "__main__":
    main()

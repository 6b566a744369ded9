"""kNN (DINO weighted vote): embedstore vs scikit-learn and the bare matrix product; sweep cost.

10,000 train x 2,000 test x 2,048-d synthetic float32 features, 5 classes, k = 20, T = 0.07.

1. One classification: the bare torch matrix product it needs (the floor), embedstore's torch and
   FAISS backends, and scikit-learn's ``KNeighborsClassifier(metric="cosine", algorithm="brute",
   weights=exp((1 - d) / T))``: times, ratios, test accuracy.
2. A label-fraction x seed x k sweep: one test x train similarity matrix, then one top-k per cell,
   against refitting the classifier per cell.

    /work/venv/bin/python benchmarks/bench_knn.py [--train 10000] [--test 2000] [--dim 2048]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from embedstore.probes.knn import KNNClassifier, knn_vote  # noqa: E402

T, K = 0.07, 20


def similarity_matrix(Xte: np.ndarray, Xtr: np.ndarray) -> torch.Tensor:
    """Cosine similarities (test, train), as the kNN probe computes them."""
    q = torch.nn.functional.normalize(torch.from_numpy(Xte), dim=1)
    return q @ torch.nn.functional.normalize(torch.from_numpy(Xtr), dim=1).T


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Rows of a class-stratified subset with at least one sample per class."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rows.append(rng.choice(idx, max(1, round(fraction * idx.size)), replace=False))
    return np.sort(np.concatenate(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=10_000)
    ap.add_argument("--test", type=int, default=2_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    n = args.train + args.test
    y = rng.integers(0, 5, n)
    centers = rng.normal(size=(5, args.dim)).astype(np.float32)
    X = (0.04 * centers[y] + rng.normal(size=(n, args.dim)).astype(np.float32)).astype(np.float32)
    Xtr, ytr, Xte, yte = X[: args.train], y[: args.train], X[args.train :], y[args.train :]
    print(
        f"train {args.train} x test {args.test} x {args.dim}-d float32, k={K}, T={T}, "
        f"torch threads {torch.get_num_threads()}; shared loaded machine, best of {args.repeat}"
    )

    qn = torch.nn.functional.normalize(torch.from_numpy(Xte), dim=1)
    bn = torch.nn.functional.normalize(torch.from_numpy(Xtr), dim=1)
    runs = {"mm": [], "torch": [], "faiss": []}
    accs_run = {}
    for _ in range(args.repeat):  # interleaved, so load spikes hit every contender alike
        t = time.perf_counter()
        _ = qn @ bn.T
        runs["mm"].append(time.perf_counter() - t)
        for backend in ("torch", "faiss"):
            t = time.perf_counter()
            model = KNNClassifier(k=K, temperature=T, backend=backend).fit(Xtr, ytr)
            accs_run[backend] = model.score(Xte, yte)
            runs[backend].append(time.perf_counter() - t)
    t_mm = min(runs["mm"])
    rows = [("bare matmul (normalised q @ b.T)", t_mm, None)]
    for backend in ("torch", "faiss"):
        name = f"embedstore KNNClassifier ({backend})"
        rows.append((name, min(runs[backend]), accs_run[backend]))

    def sk():
        model = KNeighborsClassifier(
            n_neighbors=K, metric="cosine", algorithm="brute", weights=lambda d: np.exp((1 - d) / T)
        ).fit(Xtr, ytr)
        return model.score(Xte, yte)

    t_sk, acc_sk = best_of(sk, max(1, args.repeat - 1))
    rows.append(("sklearn KNeighborsClassifier", t_sk, acc_sk))
    print(f"\n{'fit + predict':<38}{'time':>9}{'vs matmul':>11}{'sk / this':>11}  accuracy")
    for name, t, acc in rows:
        acc_s = "" if acc is None else f"{acc:.4f}"
        print(f"{name:<38}{t:>8.3f}s{t / t_mm:>10.2f}x{t_sk / t:>10.1f}x  {acc_s}")

    # ---- sweep: fractions x seeds x k from one similarity matrix
    fractions, seeds, ks = (0.01, 0.1, 1.0), range(5), (10, 20, 50, 100)
    cells = [(f, s) for f in fractions for s in seeds]
    subsets = {cell: stratified_subset(ytr, *cell) for cell in cells}

    def sweep():
        sim = similarity_matrix(Xte, Xtr)  # (test, train), once
        out, done = {}, {}
        for cell, cols in subsets.items():
            key = cols.tobytes()  # fraction 1.0 is the same subset for every seed
            if key not in done:
                s_cols = sim if cols.size == sim.shape[1] else sim[:, torch.from_numpy(cols)]
                v, i = s_cols.topk(min(max(ks), cols.size), dim=1)  # once, for the largest k
                y_nb = torch.from_numpy(ytr[cols])[i]
                clipped = [min(k, v.shape[1]) for k in ks]  # a small subset has fewer than k
                probas = knn_vote(v, y_nb, clipped, temperature=T, n_classes=5)  # every k at once
                done[key] = dict(zip(ks, probas, strict=True))
            for k in ks:
                out[cell + (k,)] = float((done[key][k].argmax(1) == yte).mean())
        return out

    t_sim, _ = best_of(lambda: similarity_matrix(Xte, Xtr), args.repeat)
    t_sweep, accs = best_of(sweep, args.repeat)

    def refit(cell, k):
        cols = subsets[cell]
        return KNNClassifier(k=k, temperature=T).fit(Xtr[cols], ytr[cols]).score(Xte, yte)

    # refitting per cell: time every cell of one seed, scale to all seeds
    t0 = time.perf_counter()
    for f in fractions:
        for k in ks:
            assert abs(refit((f, 0), k) - accs[(f, 0, k)]) < 1e-9
    t_refit = (time.perf_counter() - t0) * len(seeds)
    n_cells = len(cells) * len(ks)
    print(
        f"\nsweep {len(fractions)} fractions x {len(seeds)} seeds x {len(ks)} k = {n_cells} cells:"
        f"\n  one similarity matrix          {t_sim:8.3f}s"
        f"\n  whole sweep from it            {t_sweep:8.3f}s  ({t_sweep / t_sim:.2f}x one matrix)"
        f"\n  refit per cell (1 seed x{len(seeds)})   {t_refit:8.3f}s  "
        f"({t_refit / t_sweep:.1f}x the sweep)"
    )
    for f in fractions:
        line = ", ".join(f"k={k}: {np.mean([accs[(f, s, k)] for s in seeds]):.3f}" for k in ks)
        print(f"  fraction {f:>5}: mean test accuracy over seeds  {line}")


if __name__ == "__main__":
    main()

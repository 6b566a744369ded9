"""Logistic many-shot sweep: embedstore vs scikit-learn's warm-started lbfgs loop.

    python benchmarks/bench_logistic.py                      # 10,000 x 2,048, 5 classes (DESIGN.md)
    python benchmarks/bench_logistic.py --n 2000 --dim 512   # quick
    python benchmarks/bench_logistic.py --n 100              # low-label: n < dim

Synthetic L2-normalised features: class means plus anisotropic noise (power-law spectrum, random
rotation, a common offset), so accuracy is well below 100% and the best C is inside the grid.
Train has --n samples; val and test --n // 5 each (at least 200). Both methods see the same arrays,
choose C on val, refit on train+val and score on test. The machine is shared: times are noisy.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings


def make_features(n_train: int, dim: int, k: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    n_eval = max(n_train // 5, 200)
    N = n_train + 2 * n_eval
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    spec = np.arange(1, dim + 1) ** -0.5
    spec /= np.sqrt((spec**2).sum())
    means = rng.standard_normal((k, dim)) * spec * (2.5 / np.sqrt(dim))
    y = rng.integers(0, k, N)
    X = ((rng.standard_normal((N, dim)) * spec + means[y]) @ q.T + q[:, 0]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    a, b = n_train, n_train + n_eval
    return X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:]


def sklearn_sweep(Xtr, ytr, Xva, yva, Xte, yte, Cs):
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    clf = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=1000)
    scores = []
    for C in Cs:  # ssl-transfer's order: wd ascending, so C descending
        clf.set_params(C=C)
        scores.append(clf.fit(Xtr, ytr).score(Xva, yva))
    best = int(np.argmax(scores))
    clf.set_params(C=Cs[best])
    test = clf.fit(np.concatenate([Xtr, Xva]), np.concatenate([ytr, yva])).score(Xte, yte)
    return Cs[best], test


def embedstore_sweep(Xtr, ytr, Xva, yva, Xte, yte, Cs, device):
    from embedstore.probes.logistic import fit_best, logistic_sweep

    res = logistic_sweep(Xtr, ytr, Xva, yva, Cs=Cs, device=device)
    probe = fit_best(res, Xtr, ytr, Xva, yva, device=device)
    return res.best_C, probe.score(Xte, yte), int(res.n_iter.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="training samples")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="threads for both (0: library defaults)")
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import torch

    from embedstore.probes.logistic import GRIDS

    if args.threads:
        torch.set_num_threads(args.threads)
    Cs = GRIDS["ericsson"]
    data = make_features(args.n, args.dim, args.classes)
    print(
        f"train {args.n} x {args.dim}, {args.classes} classes, val/test {len(data[2])} each, 45 Cs"
    )
    t = time.perf_counter()
    c_ours, acc_ours, iters = embedstore_sweep(*data, Cs, args.device)
    t_ours = time.perf_counter() - t
    print(
        f"embedstore  {t_ours:8.2f} s  best C {c_ours:.4g}  test acc {acc_ours:.4f}  "
        f"({iters} L-BFGS iterations)"
    )
    if args.skip_sklearn:
        return
    t = time.perf_counter()
    c_sk, acc_sk = sklearn_sweep(*data, Cs)
    t_sk = time.perf_counter() - t
    print(f"sklearn     {t_sk:8.2f} s  best C {c_sk:.4g}  test acc {acc_sk:.4f}")
    print(
        f"speed-up {t_sk / t_ours:.1f}x; same C: {c_ours == c_sk}; "
        f"test acc difference {100 * (acc_ours - acc_sk):+.2f} points"
    )


if __name__ == "__main__":
    main()

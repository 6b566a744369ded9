"""Few-shot episodes: embedstore's vectorised evaluation vs a plain per-episode numpy loop.

600 episodes, 2-way and 5-way 20-shot, 15 queries, on 10,000 x 2,048 synthetic float32 features
(10 classes). Both evaluate the same episodes; the mean accuracies must agree.

    /work/venv/bin/python benchmarks/bench_fewshot.py [--n 10000] [--dim 2048] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from embedstore.probes.prototypes import evaluate_episodes, sample_episodes  # noqa: E402


def numpy_loop(X: np.ndarray, ep) -> np.ndarray:
    """What a user would otherwise write: one episode at a time, in numpy."""
    accs = np.empty(ep.n_episodes)
    truth = np.repeat(np.arange(ep.n_way), ep.n_query)
    for e in range(ep.n_episodes):
        protos = X[ep.support[e]].mean(axis=1)  # (N, D)
        q = X[ep.query[e].ravel()]  # (N*Q, D)
        d = (q**2).sum(1)[:, None] - 2.0 * q @ protos.T + (protos**2).sum(1)[None, :]
        accs[e] = (d.argmin(1) == truth).mean()
    return accs


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, args.n)
    centers = rng.normal(size=(10, args.dim)).astype(np.float32)
    X = (0.05 * centers[y] + rng.normal(size=(args.n, args.dim)).astype(np.float32)).astype(
        np.float32
    )
    Xt = torch.from_numpy(X).to(args.device)
    print(
        f"features {args.n} x {args.dim} float32, {args.episodes} episodes, device {args.device}, "
        f"torch threads {torch.get_num_threads()} (shared, loaded machine: best of {args.repeat})"
    )
    head = f"{'protocol':<22}{'sample':>9}{'embedstore':>12}{'numpy loop':>12}{'ratio':>8}"
    print(head + "  accuracy")
    for n_way in (2, 5):
        t_sample, ep = best_of(
            lambda n_way=n_way: sample_episodes(
                y, n_way=n_way, k_shot=20, n_query=15, n_episodes=args.episodes, seed=0
            ),
            1,
        )
        evaluate_episodes(Xt, ep, device=args.device)  # warm-up
        t_ours, res = best_of(
            lambda ep=ep: evaluate_episodes(Xt, ep, device=args.device), args.repeat
        )
        t_loop, ref = best_of(lambda ep=ep: numpy_loop(X, ep), args.repeat)
        assert np.allclose(res.accuracies, ref), "vectorised and loop accuracies differ"
        print(
            f"{f'{n_way}-way 20-shot 15q':<22}{t_sample:>8.3f}s{t_ours:>11.3f}s{t_loop:>11.3f}s"
            f"{t_loop / t_ours:>7.1f}x  {res.mean:.4f} ± {res.ci95:.4f} (loop {ref.mean():.4f})"
        )


if __name__ == "__main__":
    main()

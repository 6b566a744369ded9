"""Training time of the DVME fusion head against scikit-learn's MLPClassifier on the concatenation.

Data: 3,000 samples, two synthetic 1280-d backbones (EfficientNet-B0-like width), 2 classes;
backbone A carries a strong class signal, B a weak one, both with isotropic noise; 80/20 split.
Both models hold out 10% of train for early stopping and standardise features.

    /work/venv/bin/python benchmarks/bench_dvme.py [--threads N] [--device cpu|cuda]

The CPU numbers depend on what else runs on the machine; the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from embedstore.probes.dvme import DVMEClassifier

N, WIDTHS, SEED = 3000, (1280, 1280), 0


def make_data(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(N, sum(WIDTHS)) float32 embeddings and (N,) labels in {0, 1}."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    blocks = []
    for width, strength in zip(WIDTHS, (1.5, 0.7), strict=True):
        direction = rng.standard_normal(width)
        direction /= np.linalg.norm(direction)
        signal = np.outer(2.0 * y - 1.0, direction) * strength  # (N, width)
        blocks.append(signal + rng.standard_normal((N, width)))  # Bayes accuracy ~0.95
    return np.hstack(blocks).astype(np.float32), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y = make_data()
    n_train = int(0.8 * N)
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    print(
        f"data: {N} x ({' + '.join(map(str, WIDTHS))}), 2 classes, {n_train} train / "
        f"{N - n_train} test; torch threads {torch.get_num_threads()}, device {args.device}"
    )

    t0 = time.perf_counter()
    dvme = DVMEClassifier(widths=WIDTHS, task="binary", seed=SEED, device=args.device)
    dvme.fit(Xtr, ytr)
    t_dvme = time.perf_counter() - t0
    att = dvme.attention_summary(Xte, yte)["mean"]

    t0 = time.perf_counter()
    mlp = make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=(512,),
            batch_size=256,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=10,
            max_iter=200,
            random_state=SEED,
        ),
    ).fit(Xtr, ytr)
    t_mlp = time.perf_counter() - t0
    mlp_epochs = mlp[-1].n_iter_

    print(
        f"DVME (proj 512, 8 heads)      : {t_dvme:7.2f} s  {dvme.n_epochs_:3d} epochs "
        f"({t_dvme / dvme.n_epochs_:.3f} s/epoch)  test acc {dvme.score(Xte, yte):.4f}  "
        f"attention A/B {att[0]:.3f}/{att[1]:.3f}"
    )
    print(
        f"sklearn MLPClassifier (512)   : {t_mlp:7.2f} s  {mlp_epochs:3d} epochs "
        f"({t_mlp / mlp_epochs:.3f} s/epoch)  test acc {mlp.score(Xte, yte):.4f}"
    )
    print(f"time ratio DVME / MLP: {t_dvme / t_mlp:.2f}x")


if __name__ == "__main__":
    main()

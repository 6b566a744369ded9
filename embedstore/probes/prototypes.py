"""Nearest class mean, and the episodic prototypical few-shot protocol.

Protocol (Snell et al. 2017, as evaluated by Ericsson et al. 2021 and Anton et al. 2022): an episode
draws N classes, K support and Q query samples per class (disjoint, without replacement); the
prototype of a class is the mean of its support embeddings; each query goes to the prototype at the
smallest squared Euclidean distance; the score is mean episode accuracy ± 1.96·σ/√E.

Episodes depend only on the labels and the seed, so one :class:`Episodes` object is drawn per run
and reused for every backbone and fusion: the comparison between feature sets is paired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embedstore.errors import InvalidDataError
from embedstore.probes._sklearn import ProbeEstimator
from embedstore.probes.episodes import WAYS_RULE, Episodes, default_n_way, sample_episodes
from embedstore.probes.validation import check_features, check_fitted, check_labels

__all__ = [
    "NearestPrototype",
    "Episodes",
    "FewShotResult",
    "sample_episodes",
    "evaluate_episodes",
    "WAYS_RULE",
    "default_n_way",
]

_CHUNK_BYTES = 4 * 2**20  # CPU: gathered support + query embeddings per block (cache-sized)
_TORCH_CHUNK_BYTES = 512 * 2**20  # GPU: gathered query embeddings per block


class NearestPrototype(ProbeEstimator):
    """Nearest class mean by squared Euclidean distance (scikit-learn estimator API).

    ``predict_proba`` is the softmax of the negative squared distances to the class means.

    Fitted attributes: ``classes_`` (C,), ``prototypes_`` (C, n_features), ``n_features_in_``.
    """

    def __init__(self) -> None:
        pass

    def fit(self, X: Any, y: Any) -> NearestPrototype:
        """Compute one mean per class. X: (n_samples, n_features); y: (n_samples,) int labels."""
        X = check_features(X)
        y = check_labels(y, n_samples=X.shape[0], allow_multilabel=False, allow_names=True)
        self.classes_, inverse = np.unique(y, return_inverse=True)
        counts = np.bincount(inverse).astype(np.float64)
        sums = np.zeros((self.classes_.size, X.shape[1]))
        np.add.at(sums, inverse, X)
        self.prototypes_ = sums / counts[:, None]  # (C, D)
        self.n_features_in_ = X.shape[1]
        return self

    def _sq_distances(self, X: Any) -> np.ndarray:
        check_fitted(self, "prototypes_")
        X = check_features(X, n_features=self.n_features_in_).astype(np.float64)
        P = self.prototypes_
        d = (X**2).sum(1)[:, None] - 2.0 * X @ P.T + (P**2).sum(1)[None, :]  # (n, C)
        return np.maximum(d, 0.0)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of negative squared distances, shape (n_samples, n_classes)."""
        logits = -self._sq_distances(X)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Label of the nearest class mean, shape (n_samples,)."""
        d = self._sq_distances(X)
        return self.classes_[d.argmin(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on (X, y)."""
        y = check_labels(y, allow_multilabel=False, allow_names=True)
        return float((self.predict(X) == y).mean())


@dataclass(frozen=True, eq=False)
class FewShotResult:
    """Per-episode accuracies and their mean ± 1.96·σ/√E (σ: population std, ``ddof=0``)."""

    accuracies: np.ndarray  # (E,)
    mean: float
    ci95: float
    n_way: int
    k_shot: int
    n_query: int
    n_episodes: int

    def to_dict(self) -> dict[str, Any]:
        """Protocol parameters and the mean ± half-width, without the per-episode values."""
        return {
            "protocol": "prototypical few-shot (Snell et al. 2017; Ericsson et al. 2021)",
            "accuracy": self.mean,
            "ci95": self.ci95,
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "n_query": self.n_query,
            "n_episodes": self.n_episodes,
        }


def evaluate_episodes(X: Any, episodes: Episodes, *, device: str = "cpu") -> FewShotResult:
    """Prototypical few-shot accuracy of features ``X`` (n_samples, dim) on ``episodes``.

    Vectorised over episodes (blocks of episodes, no per-episode Python work): prototypes (E, N, D)
    are support means, queries (E, N·Q, D) go to the prototype at the smallest squared Euclidean
    distance. On a CUDA ``device`` in torch; on the CPU in numpy, in cache-sized blocks of episodes:
    the work is a memory-bound gather, and torch's intra-op threads made it 3-4x slower on a
    loaded 2-core machine (benchmarks/bench_fewshot.py) while single-threaded numpy kept pace.
    """
    E, N, K, Q = episodes.n_episodes, episodes.n_way, episodes.k_shot, episodes.n_query
    on_cpu = torch.device(device).type == "cpu"
    if isinstance(X, torch.Tensor):
        if X.ndim != 2 or not bool(torch.isfinite(X.sum())):  # a NaN / inf makes the sum one
            check_features(X)  # raises with the full message (or passes on a mere overflow)
        if on_cpu:
            X = X.detach().cpu().numpy()
        else:
            X = X.detach().to(device=device, dtype=torch.float32)
    else:
        X = np.ascontiguousarray(check_features(X), dtype=np.float32)
        if not on_cpu:
            X = torch.from_numpy(X).to(device)
    n = X.shape[0]
    top = int(max(episodes.support.max(), episodes.query.max()))
    if top >= n:
        raise InvalidDataError(
            f"episodes index row {top}, but X has only {n} rows; draw the episodes from the labels "
            "of the same rows as X"
        )
    if on_cpu:
        correct = _correct_numpy(np.asarray(X, dtype=np.float32), episodes)
    else:
        correct = _correct_torch(X, episodes)
    acc = correct / float(N * Q)  # (E,) float64
    return FewShotResult(
        accuracies=acc,
        mean=float(acc.mean()),
        ci95=float(1.96 * acc.std() / np.sqrt(E)),
        n_way=N,
        k_shot=K,
        n_query=Q,
        n_episodes=E,
    )


def _correct_numpy(X: np.ndarray, ep: Episodes) -> np.ndarray:
    """Correct queries per episode, (E,) int, in blocks of episodes that fit in cache."""
    E, N, K, Q = ep.n_episodes, ep.n_way, ep.k_shot, ep.n_query
    D = X.shape[1]
    truth = np.repeat(np.arange(N), Q)  # (N*Q,) way of each query
    chunk = max(1, _CHUNK_BYTES // (N * (K + Q) * D * 4))
    correct = np.empty(E, dtype=np.int64)
    for s in range(0, E, chunk):
        sup = ep.support[s : s + chunk]
        e = sup.shape[0]
        protos = X[sup.reshape(-1)].reshape(e, N, K, D).mean(axis=2)  # (e, N, D)
        q = X[ep.query[s : s + chunk].reshape(-1)].reshape(e, N * Q, D)  # (e, N*Q, D)
        # -(1/2)||q - p||^2 up to the per-query constant ||q||^2/2 (no effect on the argmax)
        score = q @ protos.transpose(0, 2, 1) - 0.5 * (protos * protos).sum(-1)[:, None, :]
        correct[s : s + e] = (score.argmax(axis=2) == truth).sum(axis=1)
    return correct


def _correct_torch(X: torch.Tensor, ep: Episodes) -> np.ndarray:
    """Correct queries per episode, (E,) int, on X's device (fused gather-mean prototypes)."""
    E, N, K, Q = ep.n_episodes, ep.n_way, ep.k_shot, ep.n_query
    D = X.shape[1]
    support = torch.from_numpy(ep.support.reshape(E * N, K).copy()).to(X.device)
    query = torch.from_numpy(ep.query.reshape(E, N * Q).copy()).to(X.device)
    truth = torch.arange(N, device=X.device).repeat_interleave(Q)  # (N*Q,) way of each query
    chunk = max(1, _TORCH_CHUNK_BYTES // (N * Q * D * 4))
    correct = []
    with torch.no_grad():
        # prototypes of every episode at once: a fused gather-and-mean, nothing (E, N, K, D) built
        protos = torch.nn.functional.embedding_bag(support, X, mode="mean").view(E, N, D)
        half_sq = 0.5 * (protos * protos).sum(-1).unsqueeze(1)  # (E, 1, N)
        for s in range(0, E, chunk):
            qi = query[s : s + chunk]  # (e, N*Q)
            e = qi.shape[0]
            q = X[qi.reshape(-1)].view(e, N * Q, D)  # (e, N*Q, D)
            score = torch.bmm(q, protos[s : s + e].transpose(1, 2)) - half_sq[s : s + e]
            correct.append((score.argmax(dim=2) == truth).sum(dim=1).cpu())
    return torch.cat(correct).numpy().astype(np.int64)

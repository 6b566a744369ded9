"""Weighted k-nearest-neighbour classification, as in DINO (Caron et al. 2021).

Each query takes its k most similar training samples; neighbour j votes for its class with weight
``exp(sim_j / T)``; the class probabilities are the normalised votes (multilabel: a weighted mean of
the neighbours' 0/1 label vectors, one probability per label).

Similarity, the same convention everywhere in this module (larger = closer):

- ``metric="cosine"``: both sides L2-normalised, ``sim = q · b`` (DINO's protocol).
- ``metric="euclidean"``: ``sim = -||q - b||² / 2``: neighbours by smallest squared distance, weight
  ``exp(-||q - b||² / (2T))``. On L2-normalised inputs ``-||q - b||²/2 = q·b - 1``, so Euclidean
  and cosine then give the same neighbours and the same probabilities for the same T.

The vote is one function, :func:`knn_vote` (one k or a grid of k from one sorted top-k). The
neighbours come from :func:`embedstore.probes.neighbors.block_topk` (torch: matmul + top-k over
bounded blocks of queries and base rows, never an (n_query, n_base) matrix) or FAISS
(``IndexFlatIP`` / ``IndexFlatL2``; 'auto' picks it on a CUDA device with a faiss GPU build). The
sweep's kNN cells share a :class:`~embedstore.probes.neighbors.SimilarityCache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from embedstore.errors import InvalidDataError
from embedstore.probes._sklearn import ProbeEstimator
from embedstore.probes._weights import class_weights
from embedstore.probes.neighbors import block_topk
from embedstore.probes.validation import check_choice, check_features, check_fitted, check_labels

__all__ = ["KNN_METRICS", "KNN_BACKENDS", "KNNClassifier", "knn_vote"]

KNN_METRICS = ("cosine", "euclidean")
KNN_BACKENDS = ("auto", "faiss", "torch")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    check_choice(name, value, choices)


def _as_tensor(X: Any, device: str | torch.device, name: str, n_features: int | None = None):
    """(n, D) float32 tensor on ``device``; validated like :func:`check_features`."""
    if isinstance(X, torch.Tensor):
        if X.ndim != 2 or X.shape[0] == 0 or not bool(torch.isfinite(X.sum())):
            check_features(X, name=name)  # raises the full message (or passes on an overflow)
        if n_features is not None and X.shape[1] != n_features:
            check_features(X[:1], name=name, n_features=n_features)
        return X.detach().to(device=device, dtype=torch.float32)
    X = check_features(X, name=name, n_features=n_features)
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)


def _normalize(X: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(X, dim=1)


def _faiss_gpu_available() -> bool:
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _resolve_backend(
    backend: str, device: str | torch.device, *, faiss_gpu: bool | None = None
) -> str:
    """'auto': FAISS on a CUDA device when a faiss GPU build is installed, else torch.

    On the CPU torch's blocked matmul + top-k was at least as fast as FAISS ``IndexFlat*`` for
    every probe shape measured on the 2-core development CPU (benchmarks/bench_knn.py: 1k-100k
    base, 2048-d), so 'auto' keeps torch there; FAISS is still available with ``backend="faiss"``.
    On a GPU FAISS's fused k-selection needs no similarity blocks in GPU memory. (Not measured
    here: this machine has no GPU.) ``faiss_gpu`` overrides the detection (for tests).
    """
    _check_choice("backend", backend, KNN_BACKENDS)
    if backend != "auto":
        return backend
    on_gpu = torch.device(device).type == "cuda"
    if faiss_gpu is None:
        faiss_gpu = on_gpu and _faiss_gpu_available()
    return "faiss" if on_gpu and faiss_gpu else "torch"


def _topk_prepared(q: torch.Tensor, b: torch.Tensor, k: int, metric: str, backend: str, device):
    """Top-k of validated tensors, already L2-normalised for cosine."""
    if _resolve_backend(backend, device) == "faiss":
        return _topk_faiss(q, b, k, metric)
    sims, idx = block_topk(q, b, k, metric=metric, normalize=False, device=q.device)
    return sims.numpy(), idx.numpy()


def _topk_faiss(q: torch.Tensor, b: torch.Tensor, k: int, metric: str):
    import faiss

    qn = np.ascontiguousarray(q.cpu().numpy(), dtype=np.float32)
    bn = np.ascontiguousarray(b.cpu().numpy(), dtype=np.float32)
    d = bn.shape[1]
    index: Any = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    if q.device.type == "cuda" and _faiss_gpu_available():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), q.device.index or 0, index)
    index.add(bn)
    dist, idx = index.search(qn, k)
    sims = dist if metric == "cosine" else np.minimum(-0.5 * dist, 0.0)
    return sims.astype(np.float32), idx.astype(np.int64)


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise InvalidDataError(f"k must be an integer >= 1; got {k!r}")


def knn_vote(
    sims: Any,
    labels_of_neighbors: Any,
    ks: Sequence[int],
    *,
    temperature: float = 0.07,
    n_classes: int | None = None,
    class_weight: np.ndarray | None = None,
) -> list[np.ndarray]:
    """DINO's weighted vote of the first k neighbours, for every k in ``ks``, in one pass.

    The one implementation of the vote: ``--method knn`` (the engine's cells, one sorted top-k per
    labelled subset from a :class:`~embedstore.probes.neighbors.SimilarityCache`, every k of the
    grid) and :class:`KNNClassifier` both call it.

    Args:
        sims: (nq, kmax) similarities of each query's neighbours, in neighbour order (for several
            k: sorted, largest first, so that the first k columns are the k nearest).
        labels_of_neighbors: (nq, kmax) int class indices in [0, n_classes), or (nq, kmax, L) 0/1.
        ks: numbers of neighbours, each in [1, kmax].
        temperature: T in the vote weight ``exp(sim / T)``.
        n_classes: number of classes C (single-label; default: largest label + 1).
        class_weight: (C,) multipliers of each class's votes (``"balanced"``: n / (C n_c), see
            ``_weights.class_weights``); single-label only. None: every vote as it is.

    Returns:
        One (nq, C) (multilabel: (nq, L)) probability array per k, in the order of ``ks``.
    """
    if temperature <= 0:
        raise InvalidDataError(f"temperature must be > 0; got {temperature}")
    # (nq, k) arrays are small: numpy, single-threaded, beats torch's intra-op threads here
    s = np.asarray(sims.detach().cpu() if torch.is_tensor(sims) else sims, dtype=np.float64)
    lab = labels_of_neighbors
    lab = np.asarray(lab.detach().cpu() if torch.is_tensor(lab) else lab)
    if s.ndim != 2 or lab.shape[:2] != s.shape or lab.ndim not in (2, 3):
        raise InvalidDataError(
            f"sims must be (nq, k) and labels_of_neighbors (nq, k) or (nq, k, L); received "
            f"{s.shape} and {lab.shape}"
        )
    nq, kmax = s.shape
    if any(int(k) != k or not 1 <= k <= kmax for k in ks):
        raise InvalidDataError(f"every k must be an integer in [1, {kmax}]; got {list(ks)}")
    # subtracting each row's largest similarity leaves the normalised votes unchanged
    w = np.exp((s - s.max(axis=1, keepdims=True)) / temperature)  # (nq, kmax)
    if lab.ndim == 2:
        lab = lab.astype(np.int64)
        C = int(lab.max()) + 1 if n_classes is None else int(n_classes)
        if lab.size and (lab.min() < 0 or lab.max() >= C):
            raise InvalidDataError(
                f"neighbour labels must lie in [0, {C}); received {lab.min()}..{lab.max()}"
            )
        cell = np.arange(nq)[:, None] * C + lab  # (nq, kmax): one-hot(labels) as flat cells
        if class_weight is not None:  # each vote times its class's weight; normalised below
            w = w * np.asarray(class_weight, dtype=np.float64)[lab]
    else:
        C = lab.shape[2]
    votes, norm, done, out = np.zeros((nq, C)), np.zeros(nq), 0, {}
    for k in sorted({int(k) for k in ks}):  # add the neighbours done..k-1 to the running votes
        wk = w[:, done:k]
        if lab.ndim == 3:  # multilabel: weighted mean of the neighbours' 0/1 vectors
            votes += np.einsum("qk,qkl->ql", wk, lab[:, done:k].astype(np.float64))
        else:
            flat = cell[:, done:k].ravel()
            votes += np.bincount(flat, weights=wk.ravel(), minlength=nq * C).reshape(nq, C)
        norm += wk.sum(axis=1)
        out[k], done = votes / norm[:, None], k
    return [out[int(k)] for k in ks]


class KNNClassifier(ProbeEstimator):
    """DINO's weighted kNN classifier (scikit-learn estimator API); see the module docstring.

    Args:
        k: neighbours per query (clipped to the training size; the value used is ``k_``).
        temperature: T in the vote weight ``exp(sim / T)``.
        metric: "cosine" (L2-normalised, DINO) or "euclidean" (``sim = -||q - b||² / 2``).
        backend: "auto", "torch" (matmul + top-k) or "faiss".
        device: torch device for the torch backend and the stored training features.
        class_weight: None, "balanced" (votes times n / (n_classes * n_c), scikit-learn's
            weights of the training classes) or a {class: weight} dict; single-label only.

    Fitted attributes: ``classes_`` (C,) single-label classes, or ``n_labels_`` for multilabel;
    ``multilabel_``; ``n_features_in_``; ``k_``; ``class_weight_`` (C,) or None.
    """

    _multilabel = True

    def __init__(
        self,
        *,
        k: int = 20,
        temperature: float = 0.07,
        metric: str = "cosine",
        backend: str = "auto",
        device: str = "cpu",
        class_weight: str | dict | None = None,
    ) -> None:
        self.k = k
        self.temperature = temperature
        self.metric = metric
        self.backend = backend
        self.device = device
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any) -> KNNClassifier:
        """Store the training features. X: (n, D); y: (n,) int labels or (n, L) 0/1 multilabel."""
        _check_choice("metric", self.metric, KNN_METRICS)
        _check_choice("backend", self.backend, KNN_BACKENDS)
        _check_k(self.k)
        if self.temperature <= 0:
            raise InvalidDataError(f"temperature must be > 0; got {self.temperature}")
        Xt = _as_tensor(X, self.device, "X")
        y = check_labels(y, n_samples=Xt.shape[0], allow_names=True)
        self.multilabel_ = y.ndim == 2
        self.class_weight_ = None
        if self.multilabel_:
            if self.class_weight is not None:
                raise InvalidDataError("class_weight applies to single-label y; got multilabel")
            self.n_labels_ = y.shape[1]
            self._y = torch.from_numpy(y)
        else:
            self.classes_, inverse = np.unique(y, return_inverse=True)
            self._y = torch.from_numpy(inverse.astype(np.int64))
            if self.class_weight is not None:
                self.class_weight_ = class_weights(self.class_weight, self.classes_, y)
        self._X = _normalize(Xt) if self.metric == "cosine" else Xt
        self.n_features_in_ = Xt.shape[1]
        self.k_ = min(int(self.k), Xt.shape[0])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, C) class probabilities in the order of ``classes_``, or (n, L) per-label ones."""
        check_fitted(self, "_X")
        q = _as_tensor(X, self.device, "X", n_features=self.n_features_in_)
        if self.metric == "cosine":
            q = _normalize(q)
        sims, idx = self._neighbors(q)
        n_classes = None if self.multilabel_ else self.classes_.size
        labels = self._y[torch.from_numpy(idx)]  # (n, k) or (n, k, L)
        t, cw = self.temperature, self.class_weight_
        (proba,) = knn_vote(sims, labels, [sims.shape[1]], temperature=t, n_classes=n_classes,
                            class_weight=cw)  # fmt: skip
        return proba

    def neighbors(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """The ``k_`` nearest training rows of each row of X: ``(sims, idx)``, float32 (n, k_)
        similarities, largest first (see the module docstring), and int64 (n, k_) row indices."""
        check_fitted(self, "_X")
        q = _as_tensor(X, self.device, "X", n_features=self.n_features_in_)
        return self._neighbors(_normalize(q) if self.metric == "cosine" else q)

    def _neighbors(self, q: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        return _topk_prepared(q, self._X, self.k_, self.metric, self.backend, self.device)

    def predict(self, X: Any) -> np.ndarray:
        """(n,) class labels, or (n, L) 0/1 labels (probability >= 0.5) for multilabel."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (multilabel: mean per-label accuracy; see :func:`selection.score`)."""
        from embedstore.probes.selection import score

        return score(
            check_labels(y, allow_names=True),
            self.predict_proba(X),
            classes=self._classes_or_none(),
        )

    def _classes_or_none(self) -> np.ndarray | None:
        return None if self.multilabel_ else self.classes_

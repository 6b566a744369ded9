"""The nearest neighbour of each query row among base rows, by cosine similarity, in bounded memory.

Three ways, one answer format (``sims`` (nq,) float32, ``idx`` (nq,) int64 rows of X):

- ``"exact"``: :func:`embedstore.probes.neighbors.block_topk`, blocked matrix products of
  L2-normalised rows (blocks of at most 64 MiB; never an (nq, nb) matrix). Exact.
- ``"flat"``: FAISS ``IndexFlatIP`` on L2-normalised rows, on the GPU when there is one and faiss
  has GPU support (else on the CPU). Exact.
- ``"ivf"``: FAISS ``IndexIVFFlat`` (inner product), ``nlist = √nb`` lists trained by k-means on
  at most ``40·nlist`` base rows, ``nprobe = IVF_NPROBE`` lists searched per query (about
  ``32/√nb`` of the base). Approximate: the recall of the true nearest
  neighbour measured by ``benchmarks/bench_audit.py`` is in docs/audit.md.

``"auto"``: ``flat`` while the base has at most ``EXACT_MAX_BASE`` rows (FAISS's flat search runs
on BLAS: 1.5× faster than the blocked torch products on this project's 2-core machine, same
neighbours), ``ivf`` beyond on the CPU (an exact search costs nq·nb·D multiply-adds: at
200,000 × 200,000 × 1,024 that is 4·10^13, an hour on two cores); on a CUDA device ``flat`` on the
GPU when faiss has GPU support, else ``exact`` (torch) on the GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from embedstore.errors import InvalidDataError
from embedstore.probes.neighbors import block_topk

__all__ = ["EXACT_MAX_BASE", "IVF_NPROBE", "METHODS", "nearest", "resolve_method"]

METHODS = ("auto", "exact", "flat", "ivf")
EXACT_MAX_BASE = 200_000
IVF_NPROBE = 32


def _faiss_gpu() -> bool:
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def resolve_method(method: str, n_base: int, device: str) -> str:
    """The search ``method`` 'auto' stands for at this size and device (see the module doc)."""
    if method not in METHODS:
        raise InvalidDataError(f"search method must be one of {', '.join(METHODS)}; got {method!r}")
    if method != "auto":
        return method
    if str(device).startswith("cuda"):
        return "flat" if _faiss_gpu() else "exact"
    return "flat" if n_base <= EXACT_MAX_BASE else "ivf"


def _normalised(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    block = np.ascontiguousarray(X[rows], dtype=np.float32)
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    return block / np.maximum(norms, 1e-12)


def _faiss_topk(
    X: np.ndarray, q_rows: np.ndarray, b_rows: np.ndarray, k: int, method: str, device: str
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    base = _normalised(X, b_rows)
    d = base.shape[1]
    index: Any  # a FAISS index: IVF, flat, or flat on a GPU
    if method == "ivf":
        nlist = max(1, min(len(base) // 39, int(np.sqrt(len(base)))))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = rng.choice(len(base), size=min(len(base), 40 * nlist), replace=False)
        index.train(base[np.sort(sample)])
        index.nprobe = min(IVF_NPROBE, nlist)
    else:
        index = faiss.IndexFlatIP(d)
        if str(device).startswith("cuda") and _faiss_gpu():
            gpu = int(str(device).split(":")[1]) if ":" in str(device) else 0
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
    index.add(base)
    sims = np.empty((len(q_rows), k), dtype=np.float32)
    idx = np.empty((len(q_rows), k), dtype=np.int64)
    step = max(1, (64 * 2**20) // (4 * d))  # query blocks of at most 64 MiB
    for s in range(0, len(q_rows), step):
        q = _normalised(X, q_rows[s : s + step])
        sims[s : s + step], idx[s : s + step] = index.search(q, k)
    return sims, idx


def nearest(
    X: np.ndarray,
    q_rows: np.ndarray,
    b_rows: np.ndarray,
    *,
    exclude_self: bool = False,
    method: str = "auto",
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The most cosine-similar row of ``X[b_rows]`` for each row of ``X[q_rows]``.

    Args:
        X: array of shape (n, D); rows are L2-normalised here, block by block.
        q_rows, b_rows: row indices into X of the queries and of the base.
        exclude_self: a query's own row is not its neighbour (searching within one split).

    Returns:
        ``(sims, idx)``: float32 (nq,) cosine similarity and int64 (nq,) row of X (-1 where the
        base holds nothing but the query itself).
    """
    q_rows, b_rows = np.asarray(q_rows, np.int64), np.asarray(b_rows, np.int64)
    if len(q_rows) == 0 or len(b_rows) == 0:
        return np.full(len(q_rows), np.nan, np.float32), np.full(len(q_rows), -1, np.int64)
    k = min(len(b_rows), 2 if exclude_self else 1)
    how = resolve_method(method, len(b_rows), device)
    if how == "exact":
        dev = torch.device(device)
        s, i = block_topk(X, X, k, q_rows=q_rows, b_rows=b_rows, normalize=True, device=dev)
        sims, pos = s.numpy(), i.numpy()
    else:
        sims, pos = _faiss_topk(X, q_rows, b_rows, k, how, device)
    rows = np.where(pos >= 0, b_rows[np.clip(pos, 0, None)], -1)  # (nq, k) rows of X
    if exclude_self:
        own = rows[:, 0] == q_rows
        first = np.where(own, 1, 0) if k > 1 else np.zeros(len(q_rows), np.int64)
        pick = np.arange(len(q_rows))
        sims_out, rows_out = sims[pick, first].copy(), rows[pick, first].copy()
        if k == 1:
            sims_out[own], rows_out[own] = np.nan, -1
        return sims_out.astype(np.float32), rows_out
    return sims[:, 0].astype(np.float32), rows[:, 0]

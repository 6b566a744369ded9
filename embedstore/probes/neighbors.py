"""Top-k neighbours in blocks, and the similarity cache a sweep's kNN cells share.

:func:`block_topk` never builds an (n_query, n_base) matrix: it gathers a block of query rows and
a block of base rows at a time (both at most ``BLOCK_BYTES``), takes the top-k of their product and
merges it into the running top-k of the query block. Memory is a few blocks, whatever the sizes.

:class:`SimilarityCache` serves every kNN cell of one feature set in a sweep. When the
(n_query, n_pool) similarity matrix of a query split against the pool the subsets are drawn from
fits in a budget (the feature matrix's size, at least 256 MiB, at most 1 GiB), it is computed
on its second use and each later cell is a column selection and a top-k; above the budget each
cell runs :func:`block_topk` on its own rows. Either way peak memory is bounded by a constant times the
feature matrix, never by n².
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["BLOCK_BYTES", "SimilarityCache", "block_topk", "prepare_rows"]

BLOCK_BYTES = 64 * 2**20  # one gathered block of rows, or one block of similarities
_MIN_CACHE, _MAX_CACHE = 256 * 2**20, 2**30


def prepare_rows(X, rows: np.ndarray | None, device, *, normalize: bool) -> torch.Tensor:
    """Rows of X (all when ``rows`` is None) as float32 on ``device``, L2-normalised if asked."""
    if isinstance(X, torch.Tensor):
        block = X if rows is None else X[torch.as_tensor(rows, device=X.device)]
        block = block.to(device=device, dtype=torch.float32)
    else:
        gathered = np.asarray(X if rows is None else X[rows], dtype=np.float32)
        block = torch.from_numpy(gathered).to(device)
    return torch.nn.functional.normalize(block, dim=1) if normalize else block


def _spans(n: int, step: int) -> Iterator[slice]:
    for s in range(0, n, step):
        yield slice(s, min(s + step, n))


def block_topk(
    Q,
    B,
    k: int,
    *,
    q_rows: np.ndarray | None = None,
    b_rows: np.ndarray | None = None,
    metric: str = "cosine",
    normalize: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most similar base rows of each query row, computed in bounded blocks.

    Args:
        Q, B: (nq_all, D) and (nb_all, D) arrays or tensors (may be the same matrix).
        q_rows, b_rows: positions of the query / base rows in Q / B (None: all rows).
        metric: "cosine" (``normalize`` L2-normalises each gathered block first) or "euclidean"
            (similarity ``-||q - b||² / 2``).

    Returns:
        ``(sims, idx)`` on the CPU: float32 (nq, k) similarities, largest first, and int64 (nq, k)
        positions into ``b_rows`` (into B when None). k is clipped to the number of base rows.
    """
    nq = len(Q) if q_rows is None else len(q_rows)
    nb = len(B) if b_rows is None else len(b_rows)
    D = Q.shape[1]
    k = min(int(k), nb)
    b_step = max(1, min(nb, BLOCK_BYTES // (4 * D)))
    q_step = max(1, min(BLOCK_BYTES // (4 * D), BLOCK_BYTES // (4 * b_step)))
    whole_base = b_step >= nb  # one block: gather and prepare it once
    cosine = metric == "cosine"
    base = prepare_rows(B, b_rows, device, normalize=normalize and cosine) if whole_base else None
    sims, idx = [], []
    with torch.no_grad():
        for qs in _spans(nq, q_step):
            qi = None if q_rows is None else q_rows[qs]
            rows = np.arange(qs.start, qs.stop) if qi is None else qi
            q = prepare_rows(Q, rows, device, normalize=normalize and cosine)
            best_v: torch.Tensor | None = None
            best_i: torch.Tensor | None = None
            for bs in _spans(nb, b_step):
                if base is not None:  # the whole base, prepared once
                    b = base
                else:
                    bi = np.arange(bs.start, bs.stop) if b_rows is None else b_rows[bs]
                    b = prepare_rows(B, bi, device, normalize=normalize and cosine)
                block = q @ b.T  # (cq, cb)
                if not cosine:
                    block -= 0.5 * (b * b).sum(1)
                v, i = block.topk(min(k, block.shape[1]), dim=1)  # sorted, largest first
                i = i + bs.start
                if best_v is not None and best_i is not None:
                    v, j = torch.cat([best_v, v], dim=1).topk(k, dim=1)
                    i = torch.cat([best_i, i], dim=1).gather(1, j)
                best_v, best_i = v, i
            assert best_v is not None and best_i is not None  # nb >= 1: one block at least
            if not cosine:  # -||q-b||^2/2 = q.b - |b|^2/2 - |q|^2/2
                best_v = (best_v - 0.5 * (q * q).sum(1, keepdim=True)).clamp_(max=0.0)
            sims.append(best_v.cpu())
            idx.append(best_i.cpu())
    return torch.cat(sims), torch.cat(idx)


class SimilarityCache:
    """Cosine top-k of query splits (and of the pool itself, for CV) against pool rows.

    Args:
        X: (n, D) features of one feature set (never copied whole).
        pool: positions subsets are drawn from; queries: {"test": positions, "val": positions}.
    """

    def __init__(self, X: np.ndarray, pool: np.ndarray, queries: dict[str, np.ndarray], device):
        self.X, self.pool, self.queries, self.device = X, pool, queries, device
        self.budget = min(_MAX_CACHE, max(_MIN_CACHE, 4 * X.shape[0] * X.shape[1]))
        self.col = np.full(len(X), -1, dtype=np.int64)
        self.col[pool] = np.arange(len(pool))
        self._mats: dict[str, torch.Tensor] = {}
        self._uses: dict[str, int] = {}

    def _matrix(self, kind: str) -> torch.Tensor | None:
        """The (n_rows, n_pool) similarities of ``kind`` ("test", "val", "pool"), if they fit
        and are asked for a second time (a single use, as in `probe`, needs no matrix)."""
        rows = self.pool if kind == "pool" else self.queries[kind]
        self._uses[kind] = self._uses.get(kind, 0) + 1
        if 4 * len(rows) * len(self.pool) > self.budget or self._uses[kind] < 2:
            return None
        if kind not in self._mats:
            p = prepare_rows(self.X, self.pool, self.device, normalize=True)
            q = p if kind == "pool" else prepare_rows(self.X, rows, self.device, normalize=True)
            with torch.no_grad():
                self._mats[kind] = q @ p.T
            del p, q
        return self._mats[kind]

    def topk(self, kind: str, cols: np.ndarray, k: int, rows: np.ndarray | None = None):
        """Top-k over pool positions ``cols`` for the rows of ``kind`` (or pool ``rows``).

        Returns ``(sims, idx)`` as :func:`block_topk`, idx indexing ``cols``.
        """
        q_rows = self.queries[kind] if rows is None else rows
        mat = self._matrix(kind)
        if mat is None:
            return block_topk(self.X, self.X, k, q_rows=q_rows, b_rows=cols, device=self.device)
        c = torch.from_numpy(self.col[cols]).to(mat.device)
        r = np.arange(len(q_rows)) if rows is None else self.col[rows]
        k = min(int(k), len(cols))
        step = max(1, BLOCK_BYTES // (4 * max(1, len(cols))))
        sims, idx = [], []
        with torch.no_grad():
            for s in _spans(len(r), step):
                block = mat[torch.from_numpy(r[s]).to(mat.device)][:, c]  # (chunk, |cols|)
                v, i = block.topk(k, dim=1)
                sims.append(v.cpu())
                idx.append(i.cpu())
        return torch.cat(sims), torch.cat(idx)

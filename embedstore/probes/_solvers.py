"""L2-regularised logistic regression for many C at once, in a rotated, preconditioned basis.

The objective is scikit-learn's, per problem p:

    f_p(W, b) = C_p * sum_i loss(x_i W + b, y_i) + 0.5 * ||W||^2      (b is not penalised)

with softmax cross-entropy (``"softmax"``) or a sum of independent sigmoid cross-entropies
(``"sigmoid"``, binary and multi-label). scikit-learn minimises f_p / (C_p n); the minimiser is the
same, and the stopping test below uses that scaling so ``tol`` means what it means there.

How it is made fast (see DESIGN.md, "Numbers to reach"):

- Centre X and rotate it once onto the eigenvectors of its Gram matrix: ``Z = (X - mean) V``, whose
  columns are orthogonal with squared norms ``lam``. The penalty is rotation-invariant, so nothing
  changes in the problem, but the loss Hessian becomes close to diagonal,
  ``C * lam_j * h_k + 1`` (h_k the mean curvature of class k), which is the preconditioner given
  to L-BFGS. Centring decouples the intercept (its curvature is ``C * n * h_k``).
- When n < D the Gram matrix is taken the other way round (the n x n kernel ``X Xᵀ``): the solution
  lies in the row space of X, so the problem has at most n - 1 parameters per class instead of D.
  This is the representer trick, written as a change of basis.
- All problems are solved by one batched L-BFGS, so each step is one (n, r) x (r, P*K) product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from embedstore.probes._lbfgs import batched_lbfgs

__all__ = ["Basis", "from_original", "make_basis", "solve_logistic", "to_original"]

_BLOCK_BYTES = 64 * 2**20  # rows of X centred and rotated at a time


@dataclass(frozen=True)
class Basis:
    """Centred, rotated training features ``Z`` (n, r+1) with a trailing column of ones.

    ``V`` (D, r) maps rotated weights back (``W = V @ W_rot``), ``mean`` (D,) is the centre,
    ``lam`` (r+1,) the squared column norms of ``Z`` (the last one, for the intercept, is n).
    """

    Z: torch.Tensor
    V: torch.Tensor
    mean: torch.Tensor
    lam: torch.Tensor


def make_basis(
    X: torch.Tensor,
    *,
    rotate: bool = True,
    intercept: bool = True,
    rotation: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> Basis:
    """Centre the rows of ``X`` (n, D) and rotate them onto their principal axes.

    Without ``intercept`` X is not centred and the trailing column is zeros: the intercept then has
    no gradient and stays at 0. ``rotation``, an orthogonal (D, D) matrix (a sweep's basis, reused
    for the refit on train+val), skips the eigendecomposition: any orthogonal basis is exact, the
    principal axes of a subset of the rows only precondition slightly less well. ``rotate=False``
    solves in the original coordinates.

    ``rows`` (int64) selects the rows to use, ``dtype`` / ``device`` where ``Z`` lives: X is read in
    row blocks, so the only (n, D) buffer made is ``Z`` itself (no gathered, centred, converted or
    device copy of X).
    """
    dtype = dtype or X.dtype
    device = torch.device(device) if device is not None else X.device
    n, D = (X.shape[0] if rows is None else len(rows)), X.shape[1]
    step = max(1, _BLOCK_BYTES // (8 * D))

    def block(s: int) -> torch.Tensor:  # (<= step, D) rows s.. of the selection
        x = X[s : s + step] if rows is None else X[rows[s : s + step]]
        return x.to(device=device, dtype=dtype)

    mean = torch.zeros(D, dtype=dtype, device=device)
    if intercept:
        for s in range(0, n, step):
            mean += block(s).sum(dim=0)
        mean /= n
    if rotate and n <= D and (rotation is None or rotation.shape != (D, D)):
        Xc = torch.cat([block(s) for s in range(0, n, step)]) - mean  # (n, D), n <= D: small
        lam, U = _eigh(Xc @ Xc.T)  # (n,), (n, n): the representer basis
        keep = lam > lam.max().clamp_min(torch.finfo(dtype).tiny) * (1e3 * torch.finfo(dtype).eps)
        lam, U = lam[keep], U[:, keep]
        root = lam.sqrt()
        V = (Xc.T @ U) / root  # (D, r), orthonormal columns
        Z = torch.empty((n, U.shape[1] + 1), dtype=dtype, device=device)
        Z[:, :-1] = U * root  # (n, r)
    else:
        if not rotate:
            V = torch.eye(D, dtype=dtype, device=device)
        elif rotation is not None and rotation.shape == (D, D):
            V = rotation.to(device=device, dtype=dtype)
        else:  # n > D: all directions kept, the rotation is exact
            G = torch.zeros((D, D), dtype=dtype, device=device)
            for s in range(0, n, step):
                xc = block(s) - mean
                G.addmm_(xc.T, xc)
            lam, V = _eigh(G)  # (D,), (D, D)
        Z = torch.empty((n, V.shape[1] + 1), dtype=dtype, device=device)
        for s in range(0, n, step):  # Z = (X - mean) @ V, block by block into its one buffer
            Z[s : s + step, :-1] = (block(s) - mean) @ V
    Z[:, -1] = 1.0 if intercept else 0.0
    lam = torch.zeros(Z.shape[1], dtype=dtype, device=device)  # (r+1,) squared column norms
    for s in range(0, n, step):  # in blocks: no (n, D) temporary beside Z
        lam += Z[s : s + step].square().sum(dim=0)
    lam[-1] = max(float(lam[-1]), 1.0)  # keeps the preconditioner finite when there is no intercept
    return Basis(Z=Z, V=V, mean=mean, lam=lam)


def solve_logistic(
    basis: Basis,
    Y: torch.Tensor,
    Cs: torch.Tensor,
    *,
    link: str,
    n_out: int,
    init: torch.Tensor | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
    sample_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve one problem per C (P,) on the rotated features; returns ``(theta, n_iter, converged)``.

    ``Y`` is (n,) int64 class indices for ``link="softmax"`` or (n, n_out) float 0/1 targets for
    ``"sigmoid"``. ``theta`` has shape (P, r+1, n_out): rotated weights, then the intercept row in
    the centred parametrisation (see :func:`to_original`). ``init``: same shape, or None.
    ``sample_weight`` (n,): each loss term is multiplied by its weight, as scikit-learn's
    ``sample_weight`` (and ``class_weight``, which becomes sample weights); the stopping test is then
    scaled by their sum instead of n, as scikit-learn's ``sw_sum``.
    """
    Z, lam = basis.Z, basis.lam
    n, r1 = Z.shape
    K = n_out
    dt = Z.dtype
    Cs = Cs.to(device=Z.device, dtype=torch.float64)
    pen = torch.ones(r1, 1, dtype=dt, device=Z.device)
    pen[-1] = 0.0  # the intercept is not penalised
    if link == "softmax":
        onehot = torch.nn.functional.one_hot(Y, K).to(dt)  # (n, K)
        curv0 = 0.5 * (1.0 - 1.0 / K)  # Böhning's bound, until the first evaluation says better
    else:
        onehot = Y.to(dt)  # (n, K)
        curv0 = 0.25
    P = len(Cs)
    w = (
        None
        if sample_weight is None
        else sample_weight.to(device=Z.device, dtype=dt)[:, None, None]
    )
    sw_sum = float(n if sample_weight is None else sample_weight.sum())
    curv = torch.full(
        (P, K), curv0, dtype=dt, device=Z.device
    )  # mean loss curvature per problem, class

    def fg(x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = len(idx)
        th = x.view(p, r1, K)
        logits = (Z @ th.permute(1, 0, 2).reshape(r1, p * K)).view(n, p, K)
        # (n, p, K) buffers are the solver's largest: the probabilities and residuals reuse logits'
        if link == "softmax":
            lse = torch.logsumexp(logits, dim=2)  # (n, p)
            li = lse - (logits * onehot[:, None, :]).sum(2)  # (n, p)
            prob = logits.sub_(lse[:, :, None]).exp_()
        else:
            li = (torch.nn.functional.softplus(logits) - logits * onehot[:, None, :]).sum(2)
            prob = logits.sigmoid_()
        h = prob * (1 - prob)  # (n, p, K)
        resid = prob.sub_(onehot[:, None, :])
        if w is not None:
            li, h = li * w[:, :, 0], h * w
            resid.mul_(w)
        loss = li.sum(0, dtype=torch.float64)
        curv[idx] = h.mean(0).clamp_min(1e-6)
        del h
        C = Cs[idx]
        resid.mul_(C.to(dt)[None, :, None])
        grad = (Z.T @ resid.reshape(n, p * K)).view(r1, p, K).permute(1, 0, 2)  # (p, r1, K)
        grad = grad + th * pen
        f = C * loss + 0.5 * (th * th * pen).sum((1, 2), dtype=torch.float64)
        return f, grad.reshape(p, r1 * K)

    def precond(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        C = Cs[idx].to(dt)[:, None, None]
        d = C * lam[None, :, None] * curv[idx][:, None, :] + pen[None]  # (p, r1, K)
        return (v.view(-1, r1, K) / d).reshape(v.shape)

    V = basis.V

    def done(g: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        # scikit-learn's test: max |gradient of f / (C n)| <= tol, in the original coordinates.
        gr = g.view(-1, r1, K)
        gw = (
            (V @ gr[:, :-1, :].permute(1, 0, 2).reshape(r1 - 1, -1))
            .abs()
            .amax(0)
            .view(-1, K)
            .amax(1)
        )
        gmax = torch.maximum(gw, gr[:, -1, :].abs().amax(1)).to(torch.float64)
        return gmax <= tol * Cs[idx] * sw_sum

    x0 = (
        torch.zeros(P, r1 * K, dtype=dt, device=Z.device)
        if init is None
        else init.reshape(P, r1 * K).to(dt)
    )
    res = batched_lbfgs(fg, x0, precond, done, max_iter=max_iter)
    return res.x.view(P, r1, K), res.n_iter, res.converged


def to_original(basis: Basis, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated ``theta`` (P, r+1, K) -> ``coef`` (P, K, D), ``intercept`` (P, K) for raw X."""
    W = torch.einsum("dr,prk->pkd", basis.V, theta[:, :-1, :])  # (P, K, D)
    b = theta[:, -1, :] - W @ basis.mean  # (P, K)
    return W, b


def from_original(basis: Basis, coef: torch.Tensor, intercept: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_original` (dropping any part of ``coef`` outside the basis)."""
    W_rot = torch.einsum("dr,pkd->prk", basis.V, coef)  # (P, r, K)
    b = intercept + coef @ basis.mean  # (P, K)
    return torch.cat([W_rot, b[:, None, :]], dim=1)


def _eigh(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric eigendecomposition; single-threaded on CPU.

    Measured here on a 2,100 x 2,100 kernel with the machine shared: 1.25 s on one thread, 6.5 s on
    two (the threads spin against each other); LAPACK's tridiagonalisation gains little from more.
    """
    if A.device.type != "cpu":
        return torch.linalg.eigh(A)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(A)
    finally:
        torch.set_num_threads(threads)

"""A batched, preconditioned L-BFGS: many independent smooth convex problems solved side by side.

Each of the ``P`` problems has its own iterate, history, step size and stopping test, but one
call of the objective evaluates every problem still running, so the expensive part (a matrix
product with the data) is one large, compute-bound product instead of ``P`` small, memory-bound
ones. Problems that have converged are dropped from later evaluations.

The objective is given as ``fg(x, idx) -> (f, g)`` for the problems ``idx`` (a 1-D index tensor) at
``x`` of shape ``(len(idx), N)``; the initial inverse-Hessian approximation as
``precond(v, idx) -> H0 @ v`` (a diagonal scaling in practice), and the stopping test as
``done(g, idx) -> bool tensor``. Backtracking line search with the Armijo condition; the objectives
here are strongly convex, so every accepted step gives a positive curvature pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LbfgsResult", "batched_lbfgs"]

Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Precond = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Done = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LbfgsResult:
    """Solutions ``x`` (P, N), objectives ``f`` (P,), ``n_iter`` (P,), ``converged`` (P,)."""

    x: torch.Tensor
    f: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot product of (p, N) tensors, accumulated in float64 -> (p,)."""
    return (a * b).sum(dim=1, dtype=torch.float64)


def batched_lbfgs(
    fg: Objective,
    x0: torch.Tensor,
    precond: Precond,
    done: Done,
    *,
    max_iter: int,
    history: int = 10,
    max_ls: int = 40,
    c1: float = 1e-4,
    ftol: float = 0.0,
) -> LbfgsResult:
    """Minimise P independent objectives from ``x0`` of shape (P, N); see the module docstring.

    A problem stops when ``done`` says so, after ``max_iter`` iterations, when its line search
    cannot decrease the objective any more (the floating-point floor), or when the relative
    decrease of one step is at most ``ftol`` (as scipy's L-BFGS-B ``ftol``).
    """
    P, N = x0.shape
    dev = x0.device
    x = x0.clone()
    all_idx = torch.arange(P, device=dev)
    f, g = fg(x, all_idx)  # (P,), (P, N)
    n_iter = torch.zeros(P, dtype=torch.long, device=dev)
    converged = done(g, all_idx).clone()
    active = ~converged
    S = torch.zeros(history, P, N, dtype=x.dtype, device=dev)
    Y = torch.zeros_like(S)
    rho = torch.zeros(history, P, dtype=torch.float64, device=dev)  # 0 marks an unused slot
    for k in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        gi, xi, fi = g[idx], x[idx], f[idx]
        # Two-loop recursion, newest pair first; slots are used in ring order k-1, k-2, ...
        order = [(k - 1 - j) % history for j in range(min(k, history))]
        q = -gi
        alphas = []
        for j in order:
            r_j = rho[j, idx]
            a = r_j * _dot(S[j, idx], q)
            q = q - a.to(q.dtype)[:, None] * Y[j, idx]
            alphas.append(a)
        d = precond(q, idx)
        for j, a in zip(reversed(order), reversed(alphas), strict=True):
            b = rho[j, idx] * _dot(Y[j, idx], d)
            d = d + (a - b).to(d.dtype)[:, None] * S[j, idx]
        gd = _dot(gi, d)
        bad = (
            gd >= 0
        )  # not a descent direction (numerical trouble): fall back to the preconditioned gradient
        if bool(bad.any()):
            d[bad] = precond(-gi[bad], idx[bad])
            gd = _dot(gi, d)
        # Backtracking Armijo line search per problem, evaluating only the problems still searching.
        t = torch.ones(len(idx), dtype=torch.float64, device=dev)
        x_new, f_new, g_new = xi.clone(), fi.clone(), gi.clone()
        searching = torch.ones(len(idx), dtype=torch.bool, device=dev)
        for _ in range(max_ls):
            loc = searching.nonzero().squeeze(1)
            if loc.numel() == 0:
                break
            xt = xi[loc] + t[loc].to(x.dtype)[:, None] * d[loc]
            ft, gt = fg(xt, idx[loc])
            ok = (ft <= fi[loc] + c1 * t[loc] * gd[loc]) & torch.isfinite(ft)
            acc = loc[ok]
            x_new[acc], f_new[acc], g_new[acc] = xt[ok], ft[ok], gt[ok]
            searching[acc] = False
            t[loc[~ok]] *= 0.5
        stalled = searching  # no decrease found: at the floating-point floor for this problem
        s, yv = x_new - xi, g_new - gi
        sy = _dot(s, yv)
        slot = k % history
        rho[slot, idx] = torch.where((sy > 0) & ~stalled, 1.0 / sy.clamp_min(1e-300), 0.0)
        S[slot, idx], Y[slot, idx] = s, yv
        x[idx], f[idx], g[idx] = x_new, f_new, g_new
        n_iter[idx] += (~stalled).long()
        conv = done(g_new, idx)
        small = (fi - f_new) <= ftol * torch.maximum(
            torch.maximum(fi.abs(), f_new.abs()), torch.ones_like(fi)
        )
        converged[idx] = conv
        active[idx] = ~(conv | stalled | small)
    return LbfgsResult(x=x, f=f, n_iter=n_iter, converged=converged)

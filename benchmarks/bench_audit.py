"""The audit's duplicate search against a brute-force numpy loop and FAISS, and the whole audit.

Synthetic clustered float32 features, ``--n`` rows (default 100,000) × ``--dim`` (1,024),
10 classes, splits 70/10/20, with ``--plant`` test rows that are noisy copies of train rows.

1. The test → train+val nearest-neighbour search: embedstore's CPU default (``search="flat"``:
   FAISS ``IndexFlatIP`` on normalised rows, queries in blocks), FAISS ``IndexFlatIP`` called
   bare, a brute-force numpy loop over query blocks (``Q @ B.T``, argmax), embedstore's blocked
   torch search (``search="exact"``, its GPU path) and its IVF (``search="ivf"``) with the recall
   of the true nearest neighbour. The matrix-product limit is the bare product of the same
   normalised blocks (numpy BLAS, no argmax), the floor of any exact search.
2. The whole ``embedstore.audit`` of a store holding these rows (float16, as extraction writes
   them), in a child process: wall time and peak resident memory, against the size of the
   float32 feature matrix.

    python benchmarks/bench_audit.py [--n 100000] [--dim 1024] [--skip-audit]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, uninstalled
from embedstore.auditing.search import nearest  # noqa: E402


def data(n: int, dim: int, plant: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, dim)).astype(np.float32)
    X = centres[y] + 1.5 * rng.normal(size=(n, dim)).astype(np.float32)
    split = rng.choice(3, size=n, p=[0.7, 0.1, 0.2]).astype(np.uint8)
    test, train = np.flatnonzero(split == 2), np.flatnonzero(split == 0)
    X[test[:plant]] = X[train[:plant]] + 0.05 * rng.normal(size=(plant, dim)).astype(np.float32)
    y[test[:plant]] = y[train[:plant]]
    return X, y, split


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def numpy_loop(X: np.ndarray, q: np.ndarray, b: np.ndarray, block: int = 1024):
    """What a user writes: normalise, then Q_block @ B.T and argmax, block by block."""
    B = X[b] / np.linalg.norm(X[b], axis=1, keepdims=True)
    best = np.empty(len(q), np.int64)
    sims = np.empty(len(q), np.float32)
    for s in range(0, len(q), block):
        Q = X[q[s : s + block]]
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        S = Q @ B.T
        best[s : s + block] = b[S.argmax(axis=1)]
        sims[s : s + block] = S.max(axis=1)
    return sims, best


def matmul_floor(X: np.ndarray, q: np.ndarray, b: np.ndarray, block: int = 1024) -> float:
    """Seconds of the bare products Q_block @ B.T (normalised rows prepared outside the clock)."""
    Q = X[q] / np.linalg.norm(X[q], axis=1, keepdims=True)
    B = X[b] / np.linalg.norm(X[b], axis=1, keepdims=True)
    t = time.perf_counter()
    for s in range(0, len(Q), block):
        _ = Q[s : s + block] @ B.T
    return time.perf_counter() - t


def faiss_bare(X: np.ndarray, q: np.ndarray, b: np.ndarray):
    """FAISS IndexFlatIP as a user calls it: normalise, add, search all queries at once."""
    import faiss

    B = X[b] / np.linalg.norm(X[b], axis=1, keepdims=True)
    Q = X[q] / np.linalg.norm(X[q], axis=1, keepdims=True)
    index = faiss.IndexFlatIP(B.shape[1])
    index.add(np.ascontiguousarray(B, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(Q, dtype=np.float32), 1)
    return sims[:, 0], b[idx[:, 0]]


def whole_audit(X, y, split, device: str) -> dict:
    """Write a store and audit it in a child process; its wall time and peak RSS."""
    from embedstore import create_store

    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    store = create_store(tmp / "b.zarr")
    store.add_dataset("d", ids=[f"r{i}" for i in range(len(X))], labels=y, split=split,
                      task="multiclass", class_names=[str(c) for c in range(10)])  # fmt: skip
    w = store.writer("d", "synthetic", dim=X.shape[1], dtype="float16")
    w.write(X)
    w.finish({})
    code = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import embedstore\n"
        "t = time.perf_counter()\n"
        f"r = embedstore.audit({str(tmp / 'b.zarr')!r}, 'd', device={device!r})\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'counts': r.counts(),\n"
        "  'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,\n"
        "  'threshold': r.thresholds['synthetic']['threshold']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--plant", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-audit", action="store_true")
    args = ap.parse_args()
    X, y, split = data(args.n, args.dim, args.plant)
    q = np.flatnonzero(split == 2)
    b = np.flatnonzero(split < 2)
    print(f"{args.n} rows x {args.dim}: {len(q)} test queries against {len(b)} train+val rows, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    floor = matmul_floor(X, q, b)
    t_flat, (s_flat, i_flat) = timed(lambda: nearest(X, q, b, method="flat"))
    t_bare, (_, i_bare) = timed(lambda: faiss_bare(X, q, b))
    t_exact, (s_exact, i_exact) = timed(
        lambda: nearest(X, q, b, method="exact", device=args.device)
    )
    t_numpy, (s_np, i_np) = timed(lambda: numpy_loop(X, q, b))
    t_ivf, (s_ivf, i_ivf) = timed(lambda: nearest(X, q, b, method="ivf"))
    recall = float((i_ivf == i_flat).mean())
    same = {k: float((v == i_flat).mean()) for k, v in
            {"bare": i_bare, "numpy": i_np, "exact": i_exact}.items()}  # fmt: skip
    rows = [
        ("matrix-product floor (numpy BLAS, no argmax)", floor, ""),
        ("embedstore flat (CPU default; FAISS flat)", t_flat, ""),
        ("FAISS IndexFlatIP, bare", t_bare, f"same neighbour {same['bare']:.4f}"),
        ("numpy brute-force loop", t_numpy, f"same neighbour {same['numpy']:.4f}"),
        ("embedstore exact (blocked torch)", t_exact, f"same neighbour {same['exact']:.4f}"),
        ("embedstore ivf (FAISS IVFFlat)", t_ivf, f"recall@1 {recall:.4f}"),
    ]
    for name, t, note in rows:
        print(f"  {name:46s} {t:8.2f} s  {t / t_flat:5.2f}x embedstore flat  {note}")
    print(f"  embedstore flat / floor {t_flat / floor:.2f}; numpy loop / flat "
          f"{t_numpy / t_flat:.2f}; bare FAISS / flat {t_bare / t_flat:.2f}")  # fmt: skip
    if not args.skip_audit:
        r = whole_audit(X, y, split, args.device)
        mib = X.nbytes / 2**20
        print(f"whole audit: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB "
              f"({r['peak_rss_mib'] / mib:.2f}x the {mib:.0f} MiB float32 matrix); "
              f"counts {r['counts']}; threshold {r['threshold']:.4f}")  # fmt: skip
    print(json.dumps({"n": args.n, "dim": args.dim, "flat_s": t_flat, "faiss_bare_s": t_bare,
                      "numpy_s": t_numpy, "exact_s": t_exact, "ivf_s": t_ivf,
                      "ivf_recall": recall, "floor_s": floor}))  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()

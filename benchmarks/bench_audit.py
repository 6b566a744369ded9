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
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BASE_ROWS = 2000  # a store this small measures the imports and fixed costs: the baseline
sys.path.insert(0, str(ROOT))  # run from a checkout, uninstalled
from embedstore.auditing.search import nearest  # noqa: E402


def data(n: int, dim: int, plant: int, seed: int = 0):
    """Features, labels, splits made per patient (two rows each) with ``plant // 4`` patients
    moved across splits, and a 3-valued ``site`` attribute the features do not encode."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, dim)).astype(np.float32)
    X = centres[y] + 1.5 * rng.normal(size=(n, dim)).astype(np.float32)
    group = np.arange(n) // 2
    split = rng.choice(3, size=group[-1] + 1, p=[0.7, 0.1, 0.2]).astype(np.uint8)[group]
    cross = rng.choice(np.flatnonzero(group % 2 == 0)[: n // 2], size=plant // 4, replace=False)
    split[cross] = (split[cross] + 1) % 3  # a patient's first row moved to another split
    test, train = np.flatnonzero(split == 2), np.flatnonzero(split == 0)
    X[test[:plant]] = X[train[:plant]] + 0.05 * rng.normal(size=(plant, dim)).astype(np.float32)
    y[test[:plant]] = y[train[:plant]]
    site = np.array(["A", "B", "C"])[rng.integers(0, 3, n)]
    return X, y, split, group, site


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


def write_store(path: Path, X, y, split, group, site) -> None:
    """A store of these rows as extraction writes them (float16), with groups and ``site``."""
    from embedstore import create_store
    from embedstore.store import write_meta

    store = create_store(path)
    store.add_dataset("d", ids=[f"r{i}" for i in range(len(X))], labels=y, split=split,
                      task="multiclass", class_names=[str(c) for c in range(10)],
                      group=[f"p{g}" for g in group])  # fmt: skip
    write_meta(store, "d", {"site": site})
    w = store.writer("d", "synthetic", dim=X.shape[1], dtype="float16")
    for s in range(0, len(X), 8192):
        w.write(X[s : s + 8192])
    w.finish({})


_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import embedstore
t0 = time.perf_counter(); steps = []
def progress(what, done, total):
    steps.append((what, time.perf_counter() - t0))
r = embedstore.audit({store!r}, 'd', meta={meta!r}, device={device!r}, progress=progress)
seconds = time.perf_counter() - t0
hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]  # kB, this process only
print(json.dumps({{'seconds': seconds, 'counts': r.counts(), 'steps': steps, 'vmhwm_kib': int(hwm),
                  'threshold': r.thresholds['synthetic']['threshold']}}))
"""


def whole_audit(path: Path, device: str, meta: tuple[str, ...] = ("site",)) -> dict:
    """Audit the store (every section) in a child process: wall time, seconds per step, and the
    child's peak resident memory: its own ``VmHWM`` (Linux). ``os.wait4``'s ``ru_maxrss``, which
    bench_memory.py reads from a small parent, is also kept: Linux carries the forking parent's
    resident pages into the child's ``ru_maxrss`` across the exec, so from this parent (which
    holds the features) it over-states the child (1.5 GB parent: 1,526 MiB for ``python -c``)."""
    code = _CHILD.format(root=str(ROOT), store=str(path), meta=list(meta), device=device)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"the audit of {path} failed:\n{err.read()}")
        r = json.loads(out.read().strip().splitlines()[-1])
    r["peak_rss_mib"] = r.pop("vmhwm_kib") / 1024
    r["wait4_maxrss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux; includes the parent's pages
    return r


def audit_rows(X, y, split, group, site, device: str) -> dict:
    """The whole audit of these rows, and of a 2,000-row store (imports and fixed costs)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    try:
        write_store(tmp / "big.zarr", X, y, split, group, site)
        m = BASE_ROWS
        write_store(tmp / "base.zarr", X[:m], y[:m], split[:m], group[:m], site[:m])
        base = whole_audit(tmp / "base.zarr", device)
        r = whole_audit(tmp / "big.zarr", device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r["base_seconds"], r["base_peak_rss_mib"] = base["seconds"], base["peak_rss_mib"]
    r["base_steps"] = base["steps"]
    return r


def print_audit(r: dict, X: np.ndarray, t_flat: float | None) -> None:
    mib = X.nbytes / 2**20
    extra = r["peak_rss_mib"] - r["base_peak_rss_mib"]
    ratio = f"  {r['seconds'] / t_flat:5.1f}x embedstore flat" if t_flat else ""
    print(f"  {'whole audit (every section), child process':46s} {r['seconds']:8.1f} s{ratio}")
    print(f"    peak RSS {r['peak_rss_mib']:.0f} MiB = {r['base_peak_rss_mib']:.0f} MiB at "
          f"{BASE_ROWS} rows (imports; audit {r['base_seconds']:.1f} s) + {extra:.0f} MiB "
          f"({extra / mib:.2f}x the {mib:.0f} MiB float32 matrix)")  # fmt: skip
    last = 0.0
    for what, t in r["steps"]:
        print(f"    {what:40s} {t - last:8.1f} s")
        last = t
    print(f"    counts {r['counts']}; threshold {r['threshold']:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--plant", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-audit", action="store_true")
    ap.add_argument("--audit-only", action="store_true", help="only the whole audit (scaling)")
    args = ap.parse_args()
    X, y, split, group, site = data(args.n, args.dim, args.plant)
    q = np.flatnonzero(split == 2)
    b = np.flatnonzero(split < 2)
    print(f"{args.n} rows x {args.dim}: {len(q)} test queries against {len(b)} train+val rows, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    if args.audit_only:
        r = audit_rows(X, y, split, group, site, args.device)
        print_audit(r, X, None)
        print(json.dumps({"n": args.n, "dim": args.dim, "audit": r}))
        return
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
    sys.stdout.flush()
    r = None
    if not args.skip_audit:
        r = audit_rows(X, y, split, group, site, args.device)
        print_audit(r, X, t_flat)
    print(json.dumps({"n": args.n, "dim": args.dim, "flat_s": t_flat, "faiss_bare_s": t_bare,
                      "numpy_s": t_numpy, "exact_s": t_exact, "ivf_s": t_ivf,
                      "ivf_recall": recall, "floor_s": floor, "audit": r}))  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()

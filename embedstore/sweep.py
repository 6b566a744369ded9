"""Label-efficiency sweeps: label fractions or shots × seeds × feature sets × methods.

One record (:class:`~embedstore.report.ProbeResult`, ``labels`` filled) per cell
(feature set, method, label setting, seed). The protocol:

- Labelled subsets come from the training split (:mod:`embedstore.data.subsets`): stratified,
  group-aware, nested and identical for every feature set, so comparisons are paired by seed.
- Scoring is always on the whole test split; the labelled subset is the only training data.
- Hyperparameters (``selection``):

  * ``"train-cv"`` (default, honest at low labels): logistic C and kNN k are chosen by
    stratified k-fold cross-validation *inside the labelled subset* (``min(5, smallest class
    count)`` folds; patient-grouped folds when the dataset has groups; logistic regression on
    subsets above ``HOLDOUT_ABOVE`` rows uses only the first fold, a 20% hold-out, because each
    fold refits the whole 45-value grid). When the smallest class
    has a single labelled sample no CV is possible and the documented defaults are used
    (C = ``DEFAULT_C``, scikit-learn's; k = the probe's k, 20, capped by the subset size);
    ``selected_on`` says which happened. The validation and test splits are never looked at.
  * ``"val"`` (the published protocol, for comparison with published numbers): chosen on the
    full validation split (the dataset's own, else a fixed-seed 20% of train, which is then left
    out of the pool the subsets are drawn from).

  Folds are drawn from ``options.seed`` (not the subset seed), so identical subsets (e.g. 100%
  of the labels under every seed) give identical results and are computed once.
- DVME early-stops on a validation subset drawn with the same fraction / shots and seed from the
  validation split (``"train-cv"``), or on the full validation split (``"val"``).

Sharing: features are loaded once; per feature set ONE test × train similarity matrix serves the
kNN of every subset and seed (a column selection and a top-k per cell), ONE train × train matrix
serves every kNN cross-validation, and the logistic grid warm-starts inside ``logistic_sweep``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from embedstore.data.subsets import LabelSubset, labelled_subsets, setting_key
from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.evaluate import ProbeOptions, resolve_methods, selection_split
from embedstore.probes.features import FeatureSet, LabelledData, load_feature_sets
from embedstore.report import ProbeResult, read_jsonl, write_jsonl
from embedstore.store import Store

__all__ = [
    "DEFAULT_C",
    "KNN_K_GRID",
    "HOLDOUT_ABOVE",
    "MAX_CV_FOLDS",
    "SELECTIONS",
    "SWEEP_METHODS",
    "cell_key",
    "cv_folds",
    "knn_grid_proba",
    "run_sweep",
]

SWEEP_METHODS = ("knn", "logreg", "proto", "dvme")
SELECTIONS = ("train-cv", "val")
KNN_K_GRID = (1, 3, 5, 10, 20, 50, 100, 200)
DEFAULT_C = 1.0  # scikit-learn's default, used when the subset is too small for CV
MAX_CV_FOLDS = 5
HOLDOUT_ABOVE = 1000  # larger subsets: one 20% hold-out fold, not all five (cost; noise is low)
_SIM_BUDGET_BYTES = 1 << 30  # largest precomputed similarity matrix kept in memory

Progress = Callable[[int, int, str], None]


def cell_key(
    dataset: str, features: Sequence[str], method: str, setting: Any, seed: int, selection: str
) -> tuple:
    """What identifies one sweep cell (and matches a record already in the results file)."""
    return (dataset, tuple(features), method, setting, int(seed), selection)


def _record_key(r: ProbeResult) -> tuple | None:
    setting = setting_key(r.labels)
    selection = r.protocol.get("selection")
    if setting is None or selection is None:
        return None
    return cell_key(r.dataset, r.features, r.method, setting, r.seed, selection)


def cv_folds(
    y: np.ndarray, group: np.ndarray | None, *, seed: int, max_folds: int = MAX_CV_FOLDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds inside a labelled subset; [] when it is too small for two folds.

    Args:
        y: (n,) labels or (n, L) 0/1 of the labelled subset.
        group: (n,) patient ids of the subset, or None.

    Returns:
        (train, held-out) position pairs into the subset. Folds = min(max_folds, smallest class
        count [multilabel: smallest positive count of a label present], number of groups).
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    n = len(y)
    if y.ndim == 2:
        counts = y.sum(axis=0)
        smallest = int(counts[counts > 0].min()) if (counts > 0).any() else n
    else:
        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    n_units = n if group is None else len(np.unique(group))
    k = min(max_folds, smallest, n_units)
    if k < 2:
        return []
    X = np.zeros((n, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when groups cannot balance every class
        if y.ndim == 2:
            splitter = (
                GroupKFold(k) if group is not None else KFold(k, shuffle=True, random_state=seed)
            )
            return list(splitter.split(X, groups=group))
        if group is not None:
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
            return list(splitter.split(X, y, groups=group))
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y))


def _cv_desc(folds, n: int) -> str:
    return f"train-cv ({len(folds)} folds)" if len(folds) > 1 else f"train-cv (20% hold-out of {n})"


def _logreg_folds(folds, n: int):
    """Logistic CV refits the whole C grid per fold: past HOLDOUT_ABOVE rows one fold is enough."""
    return folds[:1] if n > HOLDOUT_ABOVE and len(folds) == MAX_CV_FOLDS else folds


# --------------------------------------------------------------------------- shared per feature set


@dataclass
class _Shared:
    """One feature set's arrays and the similarity matrices every kNN cell reuses.

    ``sim(kind, cols)`` gives similarities between the query rows of ``kind`` ("test", "val") and
    the pool positions ``cols``, from one (n_query, n_pool) matrix computed on first use when it
    fits in memory (else per call). ``pool_sim(rows, cols)`` does the same inside the pool (CV).
    """

    fs: FeatureSet
    pool: np.ndarray  # positions subsets are drawn from
    queries: dict[str, np.ndarray]  # "test" / "val" -> positions
    device: str
    _xn: torch.Tensor | None = None
    _mats: dict[str, torch.Tensor] = field(default_factory=dict)
    col: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def __post_init__(self) -> None:
        self.col = np.full(len(self.fs.X), -1, dtype=np.int64)
        self.col[self.pool] = np.arange(len(self.pool))

    @property
    def xn(self) -> torch.Tensor:
        """Rows L2-normalised once (cosine kNN on fusions needs the fused row normalised)."""
        if self._xn is None:
            x = torch.from_numpy(np.ascontiguousarray(self.fs.X, dtype=np.float32))
            self._xn = torch.nn.functional.normalize(x, dim=1).to(self.device)
        return self._xn

    def _idx(self, positions: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(positions, dtype=np.int64)).to(self.device)

    def _cols(self, cols: np.ndarray) -> torch.Tensor:
        return self._idx(self.col[cols])

    def sim(self, kind: str, cols: np.ndarray) -> torch.Tensor:
        """(n_query, len(cols)) cosine similarities of the ``kind`` split to pool rows ``cols``."""
        rows = self.queries[kind]
        if 4 * len(rows) * len(self.pool) > _SIM_BUDGET_BYTES:
            return self.xn[self._idx(rows)] @ self.xn[self._idx(cols)].T
        if kind not in self._mats:
            self._mats[kind] = self.xn[self._idx(rows)] @ self.xn[self._idx(self.pool)].T
        return self._mats[kind][:, self._cols(cols)]

    def pool_sim(self, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
        """(len(rows), len(cols)) similarities between pool positions (for cross-validation)."""
        if 4 * len(self.pool) ** 2 > _SIM_BUDGET_BYTES:
            return self.xn[self._idx(rows)] @ self.xn[self._idx(cols)].T
        if "pool" not in self._mats:
            xp = self.xn[self._idx(self.pool)]
            self._mats["pool"] = xp @ xp.T  # (n_pool, n_pool)
        return self._mats["pool"][self._cols(rows)][:, self._cols(cols)]


# --------------------------------------------------------------------------- the sweep


def run_sweep(
    store: Store,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    *,
    fractions: Sequence[float] | None = None,
    shots: Sequence[int] | None = None,
    seeds: int | Sequence[int] = 5,
    methods: Sequence[str] = ("knn", "logreg"),
    selection: str = "train-cv",
    options: ProbeOptions | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> list[ProbeResult]:
    """Every (feature set, method, label setting, seed) cell as one probe record.

    Args:
        feature_sets: single backbones and fusions, e.g. [["a"], ["b"], ["a", "b"]].
        fractions: label fractions in (0, 1]; shots: labelled samples per class. Give either
            or both.
        seeds: a number of seeds (0..n-1) or the seeds themselves.
        methods: from SWEEP_METHODS.
        selection: "train-cv" (default) or "val" (the published protocol); see the module doc.
        options: probe options (device, normalisation, logistic grid, kNN temperature and
            default k, bootstrap replicates for the per-cell CIs, the CV fold seed).
        out: a JSON-lines file: cells already in it are skipped (resume), and each new record
            is appended as soon as its cell is done.
        progress: called as ``progress(done, total, description)`` after each cell.

    Returns:
        One record per cell, in the order feature set, method, setting, seed (records read back
        from ``out`` included).
    """
    opts = options or ProbeOptions()
    if selection not in SELECTIONS:
        raise InvalidDataError(
            f"selection must be one of {', '.join(SELECTIONS)}; got '{selection}'"
        )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise InvalidDataError(f"seeds must be a positive count or distinct seeds; got {seeds!r}")
    methods = list(dict.fromkeys(methods))
    for m in methods:
        if m not in SWEEP_METHODS:
            raise InvalidDataError(
                f"sweep method '{m}' is not one of {', '.join(SWEEP_METHODS)} "
                "(few-shot episodes have their own protocol: `embedstore probe --method fewshot`)"
            )
    data, sets = load_feature_sets(store, dataset, feature_sets, normalize=opts.normalize)
    resolve_methods(",".join(methods), data.task, has_fusion=False)  # task-kind checks
    test = data.indices("test")
    if not len(test):
        raise ProtocolError(f"dataset '{dataset}' has no test rows; sweeps score on the test split")

    pool, val, val_desc = _pool_and_val(data, selection, opts.seed)
    subsets = {
        s: labelled_subsets(
            data.labels,
            pool,
            seed=s,
            fractions=fractions,
            shots=shots,
            group=data.group,
            class_names=data.class_names,
        )
        for s in seed_list
    }
    settings = [sub.setting for sub in subsets[seed_list[0]]]

    done: dict[tuple, ProbeResult] = {}
    if out is not None:
        _drop_torn_tail(out)
        for r in read_jsonl(out):
            key = _record_key(r)
            if key is not None:
                done[key] = r
    cells = [
        (fs, m, i, s)
        for fs in sets
        for m in methods
        for i in range(len(settings))
        for s in seed_list
    ]
    total, n_done = len(cells), 0
    results = []
    for fs in sets:
        shared = _Shared(fs=fs, pool=pool, queries={"test": test, "val": val}, device=opts.device)
        cache: dict[tuple, tuple] = {}
        for method in methods:
            for i, setting in enumerate(settings):
                for s in seed_list:
                    key = cell_key(dataset, fs.backbones, method, setting, s, selection)
                    if key in done:
                        results.append(done[key])
                    else:
                        sub = subsets[s][i]
                        r = _run_cell(method, sub, shared, data, cache, opts, selection, val_desc)
                        if out is not None:
                            write_jsonl([r], out)
                        results.append(r)
                    n_done += 1
                    if progress:
                        progress(
                            n_done,
                            total,
                            f"{method} on {fs.name}, {setting[0]} {setting[1]}, seed {s}",
                        )
        del shared, cache
    return results


def _drop_torn_tail(path: str | os.PathLike[str]) -> None:
    """Cut a last line left half-written by an interrupted sweep, so appends start on a new line."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def _pool_and_val(data: LabelledData, selection: str, seed: int):
    """Rows subsets are drawn from, and the validation rows (for 'val' selection and DVME)."""
    train, val = data.indices("train"), data.indices("val")
    if selection == "val" and not len(val):
        train, val, desc = selection_split(data, seed)
        return train, val, desc
    return train, val, "val"


# --------------------------------------------------------------------------- one cell


def _run_cell(method, sub: LabelSubset, sh: _Shared, data, cache, opts, selection, val_desc):
    from embedstore.probes.metrics import classification_metrics

    S = sub.positions
    # identical subsets (100% under every seed) give identical results: compute once
    key = (method, S.tobytes()) if method != "dvme" else (method, S.tobytes(), sub.seed)
    if key not in cache:
        run = {"knn": _knn, "logreg": _logreg, "proto": _proto, "dvme": _dvme}[method]
        cache[key] = run(sub, sh, data, opts, selection, val_desc)
    proba, hyper, selected_on, protocol = cache[key]
    metrics = classification_metrics(
        data.labels[sh.queries["test"]],
        proba,
        task=data.task,
        n_bootstrap=opts.n_bootstrap,
        seed=sub.seed,
    )
    return ProbeResult(
        dataset=data.dataset,
        features=sh.fs.backbones,
        method=method,
        protocol={
            **protocol,
            "selection": selection,
            "normalize": sh.fs.normalize,
            "fit_on": "labelled subset of train",
            "scored_on": "test",
        },
        metrics={k: v.to_dict() for k, v in metrics.items()},
        hyperparameters=hyper,
        selected_on=selected_on,
        seed=sub.seed,
        n_train=sub.n_labelled,
        n_test=int(len(sh.queries["test"])),
        provenance=sh.fs.provenance,
        labels={**sub.record(), "subset_digest": _digest(data.ids[S])},
    )


def _digest(ids: np.ndarray) -> str:
    """A short fingerprint of the labelled sample ids: equal digests mean the same labels."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:16]


def _score(y: np.ndarray, proba: np.ndarray) -> float:
    """Selection score: accuracy (multilabel: mean per-label accuracy at 0.5)."""
    if y.ndim == 2:
        return float(((proba >= 0.5) == (y > 0)).mean())
    return float((proba.argmax(axis=1) == y).mean())


def _pick(grid: Sequence[float], scores: np.ndarray, default: float) -> int:
    """Index of the best score; ties go to the value closest (in log scale) to the default."""
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return int(min(best, key=lambda i: abs(np.log(grid[i]) - np.log(default))))


def _expand(proba: np.ndarray, classes: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Columns for the classes a model saw -> columns for all classes (absent ones get 0)."""
    if classes is None or proba.shape[1] == n_classes:
        return proba
    full = np.zeros((proba.shape[0], n_classes), dtype=proba.dtype)
    full[:, np.asarray(classes, dtype=np.int64)] = proba
    return full


def _subset_groups(data: LabelledData, S: np.ndarray) -> np.ndarray | None:
    return None if data.group is None else data.group[S]


def knn_grid_proba(
    sim: torch.Tensor,
    y_base: np.ndarray,
    grid: Sequence[int],
    *,
    temperature: float,
    n_classes: int | None,
) -> list[np.ndarray]:
    """DINO's weighted-vote probabilities for every k of a grid from ONE top-k.

    The neighbours come sorted, so the votes of the first k are a prefix sum: one cumulative sum
    over neighbours gives all k at once (the same maths as ``knn_proba_from_neighbors``).

    Args:
        sim: (nq, nb) similarities; y_base: (nb,) labels or (nb, L) 0/1.
        grid: k values, each <= nb.

    Returns:
        One (nq, C) (or (nq, L)) probability array per k, in grid order.
    """
    v, i = sim.topk(max(grid), dim=1)  # (nq, kmax), largest first
    w = torch.exp((v - v[:, :1]).double() / temperature)  # (nq, kmax); row max is column 0
    y = torch.from_numpy(np.asarray(y_base)).to(v.device)[i]  # (nq, kmax) or (nq, kmax, L)
    if y.ndim == 2:
        y = torch.nn.functional.one_hot(y.long(), n_classes)  # (nq, kmax, C)
    votes = torch.cumsum(w[:, :, None] * y.double(), dim=1)  # (nq, kmax, C)
    norm = torch.cumsum(w, dim=1)  # (nq, kmax)
    return [(votes[:, k - 1] / norm[:, k - 1, None]).cpu().numpy() for k in grid]


def _knn(sub: LabelSubset, sh: _Shared, data: LabelledData, opts, selection, val_desc):
    from embedstore.probes.knn import knn_proba_from_similarity

    S, y = sub.positions, data.labels
    n_classes = None if y.ndim == 2 else data.n_classes

    def grid_scores(sim: torch.Tensor, y_base: np.ndarray, y_query: np.ndarray, grid):
        probas = knn_grid_proba(
            sim, y_base, grid, temperature=opts.temperature, n_classes=n_classes
        )
        return np.array([_score(y_query, p) for p in probas])

    hyper: dict[str, Any] = {}
    if selection == "val":
        val = sh.queries["val"]
        grid = [k for k in KNN_K_GRID if k <= len(S)] or [len(S)]
        scores = grid_scores(sh.sim("val", S), y[S], y[val], grid)
        k = grid[_pick(grid, scores, opts.k)]
        selected_on = val_desc
        hyper = {"k": k, "val_accuracy": float(scores.max())}
    else:
        folds = cv_folds(y[S], _subset_groups(data, S), seed=opts.seed)
        if folds:
            smallest = min(len(tr) for tr, _ in folds)
            grid = [k for k in KNN_K_GRID if k <= smallest] or [smallest]
            total = np.zeros(len(grid))
            for tr, va in folds:  # held-out-size-weighted mean accuracy over folds
                total += len(va) * grid_scores(sh.pool_sim(S[va], S[tr]), y[S[tr]], y[S[va]], grid)
            scores = total / len(S)
            k = grid[_pick(grid, scores, opts.k)]
            selected_on = f"train-cv ({len(folds)} folds)"
            hyper = {"k": k, "cv_accuracy": float(scores.max())}
        else:
            k = min(opts.k, len(S))
            selected_on = "default k (a class has 1 labelled sample: no CV possible)"
            hyper = {"k": k}
    k = min(k, len(S))
    hyper["k"] = k
    proba = knn_proba_from_similarity(
        sh.sim("test", S), y[S], k=k, temperature=opts.temperature, n_classes=n_classes
    )
    protocol = {
        "name": "weighted kNN (Caron et al. 2021)",
        "metric": "cosine",
        "temperature": opts.temperature,
        "k_grid": list(KNN_K_GRID),
    }
    return proba, hyper, selected_on, protocol


def _logreg(sub: LabelSubset, sh: _Shared, data: LabelledData, opts, selection, val_desc):
    from embedstore.probes.logistic import GRIDS, OBJECTIVE, LogisticProbe, logistic_sweep

    S, y, X = sub.positions, data.labels, sh.fs.X
    Cs = np.asarray(GRIDS[opts.grid], dtype=np.float64)
    hyper: dict[str, Any] = {}
    if selection == "val":
        val = sh.queries["val"]
        sw = logistic_sweep(X[S], y[S], X[val], y[val], task=data.task, Cs=Cs, device=opts.device)
        C = float(sw.best_C)
        selected_on = val_desc
        hyper = {"C": C, "val_score": float(np.max(sw.val_scores))}
    else:
        folds = _logreg_folds(cv_folds(y[S], _subset_groups(data, S), seed=opts.seed), len(S))
        if folds:
            total = np.zeros(len(Cs))
            for tr, va in folds:
                sw = logistic_sweep(
                    X[S[tr]],
                    y[S[tr]],
                    X[S[va]],
                    y[S[va]],
                    task=data.task,
                    Cs=Cs,
                    device=opts.device,
                )
                total += len(va) * np.asarray(sw.val_scores, dtype=np.float64)
            scores = total / sum(len(va) for _, va in folds)
            C = float(Cs[_pick(Cs, scores, DEFAULT_C)])
            selected_on = _cv_desc(folds, len(S))
            hyper = {"C": C, "cv_score": float(scores.max())}
        else:
            C = DEFAULT_C
            selected_on = f"default C={DEFAULT_C:g} (a class has 1 labelled sample: no CV possible)"
            hyper = {"C": C}
    model = LogisticProbe(C=C, task=data.task, device=opts.device).fit(X[S], y[S])
    proba = model.predict_proba(X[sh.queries["test"]])
    if y.ndim == 1:
        proba = _expand(proba, getattr(model, "classes_", None), data.n_classes)
    protocol = {
        "name": "L2 logistic regression on the labelled subset",
        "grid": opts.grid,
        "n_grid": len(Cs),
        "objective": OBJECTIVE,
    }
    return proba, hyper, selected_on, protocol


def _proto(sub: LabelSubset, sh: _Shared, data: LabelledData, opts, selection, val_desc):
    from embedstore.probes.prototypes import NearestPrototype

    S = sub.positions
    model = NearestPrototype().fit(sh.fs.X[S], data.labels[S])
    proba = _expand(
        model.predict_proba(sh.fs.X[sh.queries["test"]]), model.classes_, data.n_classes
    )
    protocol = {"name": "nearest class mean (squared Euclidean)"}
    return proba, {}, "none", protocol


def _dvme(sub: LabelSubset, sh: _Shared, data: LabelledData, opts, selection, val_desc):
    from embedstore.probes.dvme import DVMEClassifier

    S, y, X = sub.positions, data.labels, sh.fs.X
    val = sh.queries["val"]
    X_val = y_val = None
    if selection == "val" and len(val):
        V, selected_on = val, f"{val_desc} (early stopping)"
    elif len(val):
        kind, value = sub.setting
        drawn = labelled_subsets(
            y,
            val,
            seed=sub.seed,
            group=data.group,
            class_names=data.class_names,
            **{"fractions" if kind == "fraction" else "shots": [value]},
        )[0]
        V = drawn.positions
        selected_on = f"val subset ({kind} {value}, {len(V)} rows; early stopping)"
    else:
        V, selected_on = None, "held-out part of the labelled subset (early stopping)"
    if V is not None:
        X_val, y_val = X[V], y[V]
    model = DVMEClassifier(
        widths=sh.fs.widths, task=data.task, seed=sub.seed, device=opts.device
    ).fit(X[S], y[S], X_val=X_val, y_val=y_val)
    proba = model.predict_proba(X[sh.queries["test"]])
    if y.ndim == 1:
        proba = _expand(proba, getattr(model, "classes_", None), data.n_classes)
    protocol = {
        "name": "DVME (Truong et al. 2021), early stopping on a validation subset",
        "proj_dim": model.proj_dim,
    }
    return proba, {"epochs": int(model.n_epochs_)}, selected_on, protocol

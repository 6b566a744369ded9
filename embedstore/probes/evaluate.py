"""`evaluate_probes`: every requested method on every feature set, from the store, as records.

Protocols (named in every record):
- proto: nearest class mean (squared Euclidean), fit on train+val, scored on test.
- fewshot: prototypical N-way K-shot episodes drawn once from the test split's labels and shared
  by every feature set (paired); mean accuracy ± 1.96·σ/√E.
- knn: DINO's weighted kNN (cosine, k, exp(sim/T)), train+val as the base, scored on test.
- logreg: L2 logistic regression over the 45-value grid, C chosen on the validation split
  (the dataset's own, else a fixed-seed 20% of train), refit on train+val, scored on test.
- dvme: the DVME fusion head, early-stopped on the validation split, scored on test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedstore.data.splits import make_splits
from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.features import FeatureSet, LabelledData, load_feature_sets
from embedstore.report import ProbeResult
from embedstore.store import SPLIT_CODES, Store

__all__ = ["METHODS", "ProbeOptions", "evaluate_probes", "selection_split", "resolve_methods"]

METHODS = ("proto", "fewshot", "knn", "logreg", "dvme")
# The sweep may stop at scikit-learn's default tolerance (1e-4): it only ranks C. The one reported
# model is refit to 1e-6; at large C (nearly separable data) a loose tolerance leaves test
# accuracy depending on the optimiser's path (seen on the demo: 96.3 vs 97.2 at C = 1e4).
REFIT_TOL = 1e-6
_MULTILABEL_OK = {"knn", "logreg", "dvme"}


@dataclass(frozen=True)
class ProbeOptions:
    """Protocol parameters; the defaults are the literature's (DESIGN.md)."""

    seed: int = 0
    device: str = "cpu"
    normalize: str = "l2"
    grid: str = "ericsson"
    k: int = 20
    temperature: float = 0.07
    n_way: int | None = None
    k_shot: int = 20
    n_query: int = 15
    n_episodes: int = 600
    n_bootstrap: int = 1000


def resolve_methods(method: str, task: str, *, has_fusion: bool) -> list[str]:
    """'all' -> the methods that apply to this task; a single name is checked against the task."""
    if method == "all":
        chosen = ["proto", "fewshot", "knn", "logreg"] + (["dvme"] if has_fusion else [])
        return [m for m in chosen if task != "multilabel" or m in _MULTILABEL_OK]
    names = [m.strip() for m in method.split(",") if m.strip()]
    for m in names:
        if m not in METHODS:
            raise InvalidDataError(f"method '{m}' is not one of {', '.join(METHODS)} (or 'all')")
        if task == "multilabel" and m not in _MULTILABEL_OK:
            raise ProtocolError(
                f"method '{m}' needs single-label classes but this dataset is multilabel; "
                f"use one of {', '.join(sorted(_MULTILABEL_OK))}"
            )
    return names


def selection_split(data: LabelledData, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Training and validation positions for choosing hyperparameters.

    The dataset's own validation split when it has one; otherwise a fixed-seed 20% of train,
    stratified by class, and by patient group when the dataset has groups.
    """
    train, val = data.indices("train"), data.indices("val")
    if len(val):
        return train, val, "val"
    # The same stratified, group-aware splitter that makes a dataset's splits, asked for 80/20.
    codes = make_splits(
        data.labels[train],
        group=None if data.group is None else data.group[train],
        fractions=(0.8, 0.2, 0.0),
        seed=seed,
    )
    is_val = codes == SPLIT_CODES["val"]
    return train[~is_val], train[is_val], f"val (20% of train, seed {seed})"


def evaluate_probes(
    store: Store,
    dataset: str,
    feature_sets: Sequence[Sequence[str]],
    methods: Sequence[str] | str = "all",
    options: ProbeOptions | None = None,
    *,
    progress: Callable[[str, str], None] | None = None,
) -> list[ProbeResult]:
    """Run each method on each feature set; one record per (feature set, method).

    Args:
        feature_sets: single backbones and fusions, e.g. [["a"], ["b"], ["a", "b"]].
        methods: names from METHODS, or 'all' (those that apply to the task).
        progress: called with (feature set name, method) before each evaluation.
    """
    opts = options or ProbeOptions()
    data, sets = load_feature_sets(store, dataset, feature_sets, normalize=opts.normalize)
    # 'all' trains DVME on fusions only: on one backbone it is an MLP, not a fusion head.
    fusion_only = {"dvme"} if methods == "all" else set()
    if isinstance(methods, str):
        methods = resolve_methods(methods, data.task, has_fusion=any(f.is_fusion for f in sets))
    else:
        methods = resolve_methods(",".join(methods), data.task, has_fusion=False)
    if not len(data.indices("test")):
        raise ProtocolError(f"dataset '{dataset}' has no test rows; probes score on the test split")
    episodes = _episodes(data, opts) if "fewshot" in methods else None
    results = []
    for fs in sets:
        for method in methods:
            if method in fusion_only and not fs.is_fusion:
                continue
            if progress:
                progress(fs.name, method)
            results.append(_run_one(method, fs, data, opts, episodes))
    return results


# --------------------------------------------------------------------------- one method


def _run_one(method: str, fs: FeatureSet, data: LabelledData, opts: ProbeOptions, episodes):
    from embedstore.probes.metrics import classification_metrics

    test = data.indices("test")
    fit_rows = np.concatenate([data.indices("train"), data.indices("val")])
    hyper: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    selected_on = "none"
    if method == "fewshot":
        return _fewshot_record(fs, data, opts, episodes)
    if method == "proto":
        from embedstore.probes.prototypes import NearestPrototype

        model = NearestPrototype().fit(fs.X[fit_rows], data.labels[fit_rows])
        protocol = {"name": "nearest class mean (squared Euclidean)", "fit_on": "train+val"}
    elif method == "knn":
        from embedstore.probes.knn import KNNClassifier

        model = KNNClassifier(
            k=opts.k, temperature=opts.temperature, metric="cosine", device=opts.device
        ).fit(fs.X[fit_rows], data.labels[fit_rows])
        protocol = {
            "name": "weighted kNN (Caron et al. 2021)",
            "metric": "cosine",
            "k": opts.k,
            "temperature": opts.temperature,
            "base": "train+val",
        }
        hyper = {"k": opts.k}
    elif method == "logreg":
        from embedstore.probes.logistic import GRIDS, OBJECTIVE, fit_best, logistic_sweep

        tr, va, selected_on = selection_split(data, opts.seed)
        Cs = GRIDS[opts.grid]
        sweep = logistic_sweep(
            fs.X[tr],
            data.labels[tr],
            fs.X[va],
            data.labels[va],
            task=data.task,
            Cs=Cs,
            device=opts.device,
        )
        fit_rows = np.concatenate([tr, va])
        model = fit_best(
            sweep,
            fs.X[tr],
            data.labels[tr],
            fs.X[va],
            data.labels[va],
            task=data.task,
            device=opts.device,
            tol=REFIT_TOL,
        )
        protocol = {
            "name": "L2 logistic regression, C chosen on validation, refit on train+val",
            "refit_tol": REFIT_TOL,
            "grid": opts.grid,
            "n_grid": len(Cs),
            "objective": OBJECTIVE,
        }
        hyper = {"C": float(sweep.best_C), "val_accuracy": float(np.max(sweep.val_scores))}
    elif method == "dvme":
        from embedstore.probes.dvme import DVMEClassifier

        tr, va, selected_on = selection_split(data, opts.seed)
        model = DVMEClassifier(
            widths=fs.widths, task=data.task, seed=opts.seed, device=opts.device
        ).fit(fs.X[tr], data.labels[tr], X_val=fs.X[va], y_val=data.labels[va])
        fit_rows = tr
        protocol = {
            "name": "DVME (Truong et al. 2021): per-backbone projection, attention across "
            "backbones, early stopping on validation",
            "proj_dim": model.proj_dim,
        }
        hyper = {"epochs": int(model.n_epochs_)}
        summary = model.attention_summary(fs.X[test], data.labels[test])
        per_class = {  # keyed by class name, as the records are read by people
            (data.class_names[k] if isinstance(k, int) else str(k)): v
            for k, v in summary["per_class"].items()
        }
        extra = {
            "attention": {"mean": summary["mean"], "per_class": per_class},
            "attention_backbones": list(fs.backbones),
        }
        selected_on = f"{selected_on} (early stopping)"
    else:  # pragma: no cover - resolve_methods guards this
        raise InvalidDataError(f"unknown method '{method}'")
    proba = model.predict_proba(fs.X[test])
    metrics = classification_metrics(
        data.labels[test], proba, task=data.task, n_bootstrap=opts.n_bootstrap, seed=opts.seed
    )
    return ProbeResult(
        dataset=data.dataset,
        features=fs.backbones,
        method=method,
        protocol={**protocol, "normalize": fs.normalize},
        metrics={k: v.to_dict() for k, v in metrics.items()},
        hyperparameters=hyper,
        selected_on=selected_on,
        seed=opts.seed,
        n_train=int(len(fit_rows)),
        n_test=int(len(test)),
        provenance=fs.provenance,
        extra=extra,
    )


def _episodes(data: LabelledData, opts: ProbeOptions):
    from embedstore.probes.prototypes import default_n_way, sample_episodes

    test = data.indices("test")
    n_way = opts.n_way or default_n_way(data.n_classes)
    episodes = sample_episodes(
        data.labels[test],
        n_way=n_way,
        k_shot=opts.k_shot,
        n_query=opts.n_query,
        n_episodes=opts.n_episodes,
        seed=opts.seed,
    )
    return test, episodes


def _fewshot_record(fs: FeatureSet, data: LabelledData, opts: ProbeOptions, episodes):
    from embedstore.probes.prototypes import evaluate_episodes

    test, eps = episodes
    res = evaluate_episodes(fs.X[test], eps, device=opts.device)
    acc = {
        "value": float(res.mean),
        "ci_low": float(res.mean - res.ci95),
        "ci_high": float(res.mean + res.ci95),
    }
    return ProbeResult(
        dataset=data.dataset,
        features=fs.backbones,
        method="fewshot",
        protocol={
            "name": "prototypical few-shot episodes (Snell et al.; Ericsson et al. 2021)",
            "n_way": eps.n_way,
            "k_shot": eps.k_shot,
            "n_query": eps.n_query,
            "n_episodes": len(res.accuracies),
            "drawn_from": "test",
            "ci": "1.96*std/sqrt(episodes)",
            "normalize": fs.normalize,
        },
        metrics={"accuracy": acc},
        hyperparameters={},
        selected_on="none",
        seed=opts.seed,
        n_train=0,
        n_test=int(len(test)),
        provenance=fs.provenance,
    )

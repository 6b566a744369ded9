"""The built-in probe methods, one :class:`~embedstore.probes.method.Method` each.

Registered in this order (the order of ``--method all`` and of the tables): proto, fewshot, knn,
logreg, dvme. The estimators live in their own modules (prototypes, knn, logistic, dvme); the
classes here only say how each is fitted on a cell and what its records say.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstore.data.subsets import labelled_subsets
from embedstore.probes.method import (
    Cell,
    Method,
    Outcome,
    predict_rows,
    register,
)
from embedstore.probes.options import ProbeOptions
from embedstore.probes.selection import HOLDOUT_ABOVE, choose, score

__all__ = ["DEFAULT_C", "KNN_K_GRID", "REFIT_TOL"]

KNN_K_GRID = (1, 3, 5, 10, 20, 50, 100, 200)
DEFAULT_C = 1.0  # scikit-learn's default, used when the subset is too small for CV
# The sweep may stop at scikit-learn's default tolerance (1e-4): it only ranks C. The one reported
# model is refit to 1e-6; at large C (nearly separable data) a loose tolerance leaves test
# accuracy depending on the optimiser's path (seen on the demo: 96.3 vs 97.2 at C = 1e4).
REFIT_TOL = 1e-6


@register
class Prototypes(Method):
    """Nearest class mean; nothing to choose."""

    name = "proto"
    title = "nearest class mean (squared Euclidean)"
    multilabel = False

    def run(self, cell: Cell) -> Outcome:
        from embedstore.probes.prototypes import NearestPrototype

        X, y, S = cell.features.X, cell.data.labels, cell.labelled
        model = NearestPrototype().fit(X[S], y[S])
        proba = predict_rows(model, X, cell.test)
        return Outcome({}, "none", len(S), proba=proba, classes=model.classes_)


@register
class FewShot(Method):
    """Prototypical N-way K-shot episodes from the test split, the same for every feature set."""

    name = "fewshot"
    title = "prototypical few-shot episodes (Snell et al.; Ericsson et al. 2021)"
    multilabel = False
    in_sweep = False

    def check(self, data, options: ProbeOptions, memo: dict[str, Any]) -> None:
        self._episodes(data, options, memo)  # raises ProtocolError when infeasible

    @staticmethod
    def _episodes(data, opts: ProbeOptions, memo: dict[str, Any]):
        if "episodes" not in memo:
            from embedstore.probes.episodes import default_n_way, sample_episodes

            memo["episodes"] = sample_episodes(
                data.labels[data.indices("test")],
                n_way=opts.n_way or default_n_way(data.n_classes),
                k_shot=opts.k_shot,
                n_query=opts.n_query,
                n_episodes=opts.n_episodes,
                seed=opts.seed,
            )
        return memo["episodes"]

    def run(self, cell: Cell) -> Outcome:
        from embedstore.probes.fewshot_ci import data_interval
        from embedstore.probes.prototypes import evaluate_episodes

        eps = self._episodes(cell.data, cell.options, cell.memo)
        X_test = cell.features.X[cell.test]
        res = evaluate_episodes(X_test, eps, device=cell.options.device)
        acc = {
            "value": float(res.mean),
            "ci_low": float(res.mean - res.ci95),
            "ci_high": float(res.mean + res.ci95),
        }
        # Beside the published interval (episode sampling), one over the test images.
        data_ci = data_interval(
            X_test,
            cell.data.labels[cell.test],
            n_way=eps.n_way,
            k_shot=eps.k_shot,
            n_query=eps.n_query,
            seed=cell.options.seed,
            device=cell.options.device,
            groups=None if cell.data.group is None else cell.data.group[cell.test],
        )
        if data_ci is not None:
            acc["data_ci_low"], acc["data_ci_high"] = data_ci.low, data_ci.high
        protocol = {
            "n_way": eps.n_way,
            "k_shot": eps.k_shot,
            "n_query": eps.n_query,
            "n_episodes": len(res.accuracies),
            "drawn_from": "test",
            "ci": "1.96*std/sqrt(episodes)",
            "data_ci": data_ci.describe() if data_ci else "none (classes too small to resample)",
            "fit_on": "support sets of each episode",
        }
        metrics: dict[str, dict[str, float | None]] = {"accuracy": dict(acc)}
        return Outcome({}, "none", 0, metrics=metrics, protocol=protocol)


@register
class KNN(Method):
    """DINO's weighted kNN; k from ``KNN_K_GRID`` under the cell's rule ("none": ``options.k``)."""

    name = "knn"
    tuned = {"k": ("upper",)}  # k = 1 is a floor, not an edge to search beyond
    title = "weighted kNN (Caron et al. 2021)"
    class_weighted = True

    def grid(self, options: ProbeOptions) -> tuple[int, ...]:
        return KNN_K_GRID

    def protocol(self, cell: Cell) -> dict[str, Any]:
        p: dict[str, Any] = {"metric": "cosine", "temperature": cell.options.temperature}
        if cell.selection == "none":
            return {**p, "k": cell.options.k, "base": cell.fit_on}
        return {**p, "k_grid": list(KNN_K_GRID)}

    def run(self, cell: Cell) -> Outcome:
        from embedstore.probes._weights import vote_weights
        from embedstore.probes.knn import knn_vote
        from embedstore.probes.neighbors import SimilarityCache

        opts, y, S = cell.options, cell.data.labels, cell.labelled
        if "knn" not in cell.shared:
            queries = {"test": cell.test, "val": cell.val}
            cell.shared["knn"] = SimilarityCache(cell.features.X, cell.pool, queries, opts.device)
        cache: SimilarityCache = cell.shared["knn"]

        def proba(sims, idx, base: np.ndarray, grid) -> list[np.ndarray]:
            labels = y[base][idx.numpy()]  # (nq, kmax) or (nq, kmax, L)
            cw = None
            if opts.class_weight is not None and cell.n_classes is not None:
                cw = vote_weights(opts.class_weight, y[base], cell.n_classes)
            return knn_vote(
                sims,
                labels,
                grid,
                temperature=opts.temperature,
                n_classes=cell.n_classes,
                class_weight=cw,
            )

        def evaluate(tr: np.ndarray, ev: np.ndarray, grid) -> np.ndarray:
            if ev is cell.val:
                sims, idx = cache.topk("val", tr, max(grid))
            else:
                sims, idx = cache.topk("pool", tr, max(grid), rows=ev)
            return np.array([score(y[ev], p) for p in proba(sims, idx, tr, grid)])

        def grid_for(n: int) -> list[int]:
            return [k for k in KNN_K_GRID if k <= n] or [n]

        choice = choose(cell, grid_for, evaluate, name="k", default=opts.k)
        k = min(int(choice.value), len(S))
        hyper: dict[str, Any] = {"k": k}
        if choice.score is not None:
            hyper[f"{'val' if choice.on == 'val' else 'cv'}_accuracy"] = choice.score
        sims, idx = cache.topk("test", S, k)
        (p,) = proba(sims, idx, S, [k])
        return Outcome(hyper, choice.selected_on, len(S), proba=p)


@register
class Logistic(Method):
    """L2 logistic regression over a 45-value C grid (Ericsson et al. 2021; DINOv2's grid)."""

    name = "logreg"
    tuned = {"C": ("lower", "upper")}
    title = "L2 logistic regression (Ericsson et al. 2021)"
    class_weighted = True
    probe_selection = "val"
    refit_on_val = True

    def grid(self, options: ProbeOptions) -> np.ndarray:
        from embedstore.probes.grids import GRIDS

        return np.asarray(GRIDS[options.grid], dtype=np.float64)

    def protocol(self, cell: Cell) -> dict[str, Any]:
        from embedstore.probes.logistic import OBJECTIVE

        Cs = self.grid(cell.options)
        p = {"grid": cell.options.grid, "n_grid": len(Cs), "objective": OBJECTIVE}
        return {**p, "refit_tol": REFIT_TOL} if cell.refit else p

    def run(self, cell: Cell) -> Outcome:
        from embedstore.probes.logistic import LogisticProbe, logistic_sweep, refit

        X, y, S, opts = cell.features.X, cell.data.labels, cell.labelled, cell.options
        task, Cs = cell.data.task, self.grid(opts)
        last: dict[str, Any] = {}

        def evaluate(tr: np.ndarray, ev: np.ndarray, grid) -> np.ndarray:
            sw = logistic_sweep(
                X,
                y[tr],
                X,
                y[ev],
                task=task,
                Cs=grid,
                device=opts.device,
                class_weight=opts.class_weight,
                train_rows=tr,  # rows of X, not copies of them
                val_rows=ev,
            )
            last["sweep"] = sw
            return sw.val_scores

        choice = choose(
            cell,
            lambda n: Cs,
            evaluate,
            name="C",
            default=DEFAULT_C,
            first_best_on_val=True,
            holdout_above=HOLDOUT_ABOVE,
        )
        C = float(choice.value)
        hyper: dict[str, Any] = {"C": C}
        if cell.refit and choice.on == "val":  # published: refit on train+val, warm-started
            rows = np.concatenate([S, cell.val])
            sweep = last["sweep"]
            model = refit(
                sweep, X, y[rows], task=task, device=opts.device, tol=REFIT_TOL, rows=rows
            )
            hyper["val_accuracy"] = choice.score
        else:
            rows = S
            model = LogisticProbe(
                C=C, task=task, device=opts.device, class_weight=opts.class_weight
            ).fit(X, y[S], rows=S)
            if choice.score is not None:
                hyper[f"{'val' if choice.on == 'val' else 'cv'}_score"] = choice.score
        proba = predict_rows(model, X, cell.test)
        classes = None if y.ndim == 2 else model.classes_
        return Outcome(hyper, choice.selected_on, len(rows), proba=proba, classes=classes)


@register
class DVME(Method):
    """The DVME fusion head, early-stopped on validation rows (Truong et al. 2021)."""

    name = "dvme"
    title = "DVME (Truong et al. 2021): per-backbone projection, attention across backbones"
    fusion_only_in_all = True
    reuse_across_seeds = False
    probe_selection = "val"

    def _val_rows(self, cell: Cell) -> tuple[np.ndarray | None, str]:
        """Early-stopping rows: the validation rows under 'val'; in a sweep under 'train-cv', a
        validation subset drawn like the labelled one (same setting and seed)."""
        val = cell.val
        if not len(val):
            return None, "held-out part of the labelled subset (early stopping)"
        if cell.selection == "val" or cell.subset is None:
            return val, f"{cell.val_desc} (early stopping)"
        sub, data = cell.subset, cell.data
        drawn = labelled_subsets(
            data.labels,
            val,
            seed=sub.seed,
            group=data.group,
            class_names=data.class_names,
            fractions=[float(sub.value)] if sub.kind == "fraction" else None,
            shots=[int(sub.value)] if sub.kind == "shots" else None,
        )[0]
        V = drawn.positions
        return V, f"val subset ({sub.kind} {sub.value}, {len(V)} rows; early stopping)"

    def run(self, cell: Cell) -> Outcome:
        from embedstore.probes.dvme import DVMEClassifier

        X, y, S, data = cell.features.X, cell.data.labels, cell.labelled, cell.data
        V, selected_on = self._val_rows(cell)
        model = DVMEClassifier(
            widths=cell.features.widths, task=data.task, seed=cell.seed, device=cell.options.device
        ).fit(
            X[S],
            y[S],
            X_val=None if V is None else X[V],
            y_val=None if V is None else y[V],
        )
        proba = predict_rows(model, X, cell.test)
        summary = model.attention_summary(X[cell.test], y[cell.test])
        per_class = {  # keyed by class name, as the records are read by people
            (data.class_names[k] if isinstance(k, int) else str(k)): v
            for k, v in summary["per_class"].items()
        }
        extra = {
            "attention": {"mean": summary["mean"], "per_class": per_class},
            "attention_backbones": list(cell.features.backbones),
        }
        return Outcome(
            {"epochs": int(model.n_epochs_)},
            selected_on,
            len(S),
            proba=proba,
            classes=None if y.ndim == 2 else model.classes_,
            protocol={"proj_dim": model.proj_dim},
            extra=extra,
        )

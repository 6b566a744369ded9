"""Registry methods for the SVM probe and the Nielsen et al. 2023 classifiers.

- ``svm``: the RBF SVM (:mod:`~embedstore.probes.svm`), C from ``SVM_C_GRID`` chosen like the
  logistic probe's C (``probe``: on the validation split, then refit on train+val; ``sweep``: by
  the sweep's rule, CV inside the labelled subset or the validation split), with
  ``--class-weight``. Platt probabilities of the final model give the AUC.
- ``nielsen-svm``, ``nielsen-knn``, ``nielsen-logreg``: the authors' pipeline
  (:mod:`~embedstore.probes.nielsen`) with its fixed settings; nothing is selected. The power
  transform and PCA of a labelled subset are fitted once and shared by the three (the sweep runs
  the methods of one subset one after the other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstore.errors import CellFailedError
from embedstore.probes.method import Cell, Method, Outcome, predict_rows, register
from embedstore.probes.options import ProbeOptions
from embedstore.probes.selection import HOLDOUT_ABOVE, choose

__all__ = ["NielsenKNN", "NielsenLogistic", "NielsenSVM", "SVM"]


@register
class SVM(Method):
    """RBF SVM with scikit-learn's SVC semantics; C over ``SVM_C_GRID``."""

    name = "svm"
    tuned = {"C": ("lower", "upper")}
    title = "RBF SVM (scikit-learn SVC semantics: libsvm, gamma='scale')"
    multilabel = False
    probe_selection = "val"
    refit_on_val = True
    class_weighted = True
    in_all = False  # 17 libsvm fits per cell: run when named (--method svm)

    def grid(self, options: ProbeOptions) -> np.ndarray:
        from embedstore.probes.svm import SVM_C_GRID

        return SVM_C_GRID

    def protocol(self, cell: Cell) -> dict[str, Any]:
        return {"kernel": "rbf", "gamma": "scale", "n_grid": len(self.grid(cell.options))}

    def run(self, cell: Cell) -> Outcome:
        from embedstore.probes.svm import SVMProbe, svm_select_C

        X, y, S, opts = cell.features.X, cell.data.labels, cell.labelled, cell.options
        Cs = self.grid(opts)

        def evaluate(tr: np.ndarray, ev: np.ndarray, grid) -> np.ndarray:
            sel = svm_select_C(X[tr], y[tr], X[ev], y[ev], Cs=grid, class_weight=opts.class_weight)
            return sel.val_scores

        choice = choose(
            cell, lambda n: Cs, evaluate, name="C", default=1.0, holdout_above=HOLDOUT_ABOVE
        )
        C = float(choice.value)
        hyper: dict[str, Any] = {"C": C}
        rows = np.concatenate([S, cell.val]) if cell.refit and choice.on == "val" else S
        if choice.score is not None:
            hyper[f"{'val' if choice.on == 'val' else 'cv'}_accuracy"] = choice.score
        model = SVMProbe(C=C, class_weight=opts.class_weight, random_state=cell.seed)
        model.fit(X[rows], y[rows])
        hyper["gamma"] = float(model.gamma_)
        proba = predict_rows(model, X, cell.test)
        return Outcome(hyper, choice.selected_on, len(rows), proba=proba, classes=model.classes_)


class _Nielsen(Method):
    """One classifier of the Nielsen et al. pipeline on the cell's labelled rows."""

    classifier = ""
    multilabel = False
    reuse_across_seeds = True
    in_all = False  # the preset's (--protocol nielsen), or named
    shares_subset = True  # a sweep runs the three on one subset before the next subset

    def protocol(self, cell: Cell) -> dict[str, Any]:
        from embedstore.probes.nielsen import NIELSEN_NOTES

        return {"pipeline": "PowerTransformer(yeo-johnson) -> PCA -> " + self.classifier,
                "notes": list(NIELSEN_NOTES)}  # fmt: skip

    def run(self, cell: Cell) -> Outcome:
        from embedstore.probes.nielsen import nielsen_classify, nielsen_transform

        X, y, S = cell.features.X, cell.data.labels, cell.labelled
        key = (S.tobytes(), cell.test.tobytes())
        memo = cell.shared.get("nielsen")
        if memo is None or memo[0] != key:  # one subset at a time: transform once, keep the last
            try:
                memo = (key, nielsen_transform(X[S], X[cell.test]))
            except CellFailedError as e:  # not finite even in float64: each of the three fails
                memo = (key, e)
            cell.shared["nielsen"] = memo
        if isinstance(memo[1], CellFailedError):
            raise memo[1]
        Z, Zt = memo[1]
        fit = nielsen_classify(
            self.classifier, Z, y[S], Zt, n_classes=cell.data.n_classes, seed=cell.seed
        )
        return Outcome(
            dict(fit.hyperparameters),
            "none (fixed hyper-parameters: Nielsen et al. 2023)",
            len(S),
            proba=fit.proba,
            protocol={"class_weight": fit.hyperparameters.get("class_weight", "none")},
        )


@register
class NielsenSVM(_Nielsen):
    """SVC(rbf, C=1, gamma='scale', class_weight='balanced', probability, break_ties)."""

    name = "nielsen-svm"
    title = "Nielsen et al. 2023: PowerTransformer -> PCA -> SVC(rbf, C=1, balanced)"
    classifier = "svm"
    reuse_across_seeds = False  # the Platt folds are seeded by the subset's seed


@register
class NielsenKNN(_Nielsen):
    """KNeighborsClassifier(weights='distance', n_neighbors=5 x classes)."""

    name = "nielsen-knn"
    title = "Nielsen et al. 2023: PowerTransformer -> PCA -> kNN(distance, k=5*classes)"
    classifier = "knn"


@register
class NielsenLogistic(_Nielsen):
    """LogisticRegression(C=2.5, class_weight='balanced', max_iter=10000)."""

    name = "nielsen-logreg"
    title = "Nielsen et al. 2023: PowerTransformer -> PCA -> LogisticRegression(C=2.5, balanced)"
    classifier = "logreg"

"""RBF support-vector probe with scikit-learn ``SVC`` semantics, and its C selection.

The solver is scikit-learn's own libsvm (``sklearn.svm.SVC``), given the kernel matrix instead of
the features (``kernel="precomputed"``): the RBF kernel ``exp(-gamma * ||x - x'||^2)`` is computed
here with one matrix product (``||x||^2 + ||x'||^2 - 2 x.x'``, float64, as libsvm computes it),
where libsvm would compute it one row at a time. Everything else is libsvm's: the dual problem,
``C``, ``class_weight`` (C multiplied per class), one-vs-one for more than two classes, ``tol``,
``break_ties`` and Platt's probabilities (``probability=True``: five internal folds, seeded by
``random_state``). ``gamma="scale"`` is ``1 / (n_features * X.var())`` of the training features,
``"auto"`` is ``1 / n_features``, as ``SVC``. So predictions equal ``SVC(kernel="rbf")``'s up to
floating-point rounding in the kernel (``tests/probes/test_svm.py``); the speed-up over
``SVC(kernel="rbf")`` is measured in ``benchmarks/bench_nielsen.py``. Prediction computes the kernel
against the support vectors only.

C is chosen (:func:`svm_select_C`) over the named grid ``SVM_C_GRID`` on a validation split: one
kernel matrix for all C, SVMs without Platt scaling (selection only ranks C), then the chosen C is
refit with probabilities.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embedstore.errors import InvalidDataError
from embedstore.probes._sklearn import ProbeEstimator
from embedstore.probes._weights import check_class_weight
from embedstore.probes.validation import check_features, check_fitted, check_labels

__all__ = ["GAMMAS", "SVM_C_GRID", "SVMProbe", "SVMSelection", "rbf_kernel", "svm_select_C"]

SVM_C_GRID = np.logspace(-2, 3, 11)  # C = 0.01 ... 1000 in half decades; 1 (SVC's default) inside
GAMMAS = ("scale", "auto")


def _gamma(gamma: Any, X: np.ndarray) -> float:
    """scikit-learn's rule (``sklearn/svm/_base.py``): 'scale' = 1 / (D * X.var()), 'auto' = 1 / D."""
    if gamma == "scale":
        var = float(X.var())
        return 1.0 / (X.shape[1] * var) if var != 0 else 1.0
    if gamma == "auto":
        return 1.0 / X.shape[1]
    if isinstance(gamma, str) or not np.isfinite(gamma) or gamma <= 0:
        raise InvalidDataError(f"gamma must be 'scale', 'auto' or a number > 0; received {gamma!r}")
    return float(gamma)


def rbf_kernel(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    """``exp(-gamma * ||a - b||^2)`` for every row pair: float64 (len(A), len(B))."""
    a = torch.from_numpy(np.ascontiguousarray(A, dtype=np.float64))
    b = torch.from_numpy(np.ascontiguousarray(B, dtype=np.float64))
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)  # (nA, nB)
    return torch.exp(-gamma * d2.clamp_(min=0.0)).numpy()


def _svc(C: float, class_weight, probability: bool, break_ties: bool, tol: float, seed):
    from sklearn.svm import SVC

    return SVC(
        kernel="precomputed",
        C=C,
        class_weight=class_weight,
        probability=probability,
        break_ties=break_ties,
        tol=tol,
        random_state=seed,
    )


def _fit_svc(svc, K: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        # scikit-learn 1.9 deprecates SVC(probability=True) (removal planned for 1.11) in favour
        # of CalibratedClassifierCV; the Nielsen et al. protocol is written with it, so it is kept.
        warnings.simplefilter("ignore", FutureWarning)
        return svc.fit(K, y)


class SVMProbe(ProbeEstimator):
    """RBF-kernel SVM, ``sklearn.svm.SVC(kernel="rbf")`` semantics; see the module docstring.

    Args:
        C: penalty of the hinge loss (> 0).
        gamma: "scale" (default, as SVC), "auto" or a positive number.
        class_weight: None, "balanced" (C times n / (n_classes * n_c) per class) or a dict.
        probability: fit Platt's probabilities (needed by ``predict_proba``; costs five more fits).
        break_ties: as SVC: with more than two classes, ``predict`` breaks ties by the decision
            function.
        tol: libsvm's stopping tolerance.
        random_state: seed of the Platt folds (SVC's default None is not reproducible; 0 is).

    Fitted: ``classes_``, ``gamma_``, ``n_features_in_``, ``support_`` (row indices of the
    support vectors), ``svc_`` (the fitted ``SVC`` on the precomputed kernel).
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        gamma: str | float = "scale",
        class_weight: str | dict | None = None,
        probability: bool = True,
        break_ties: bool = False,
        tol: float = 1e-3,
        random_state: int | None = 0,
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight
        self.probability = probability
        self.break_ties = break_ties
        self.tol = tol
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> SVMProbe:
        """Fit on X (n, D) and single-label y (n,)."""
        if not (np.isfinite(self.C) and self.C > 0):
            raise InvalidDataError(f"C must be a finite number > 0; received {self.C!r}")
        X = check_features(X).astype(np.float64)
        y = _labels(y, len(X))
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise InvalidDataError(
                f"y must contain at least 2 classes; received one class only: "
                f"{self.classes_.tolist()}"
            )
        cw = check_class_weight(self.class_weight)
        self.gamma_ = _gamma(self.gamma, X)
        K = rbf_kernel(X, X, self.gamma_)
        svc = _svc(self.C, cw, self.probability, self.break_ties, self.tol, self.random_state)
        self.svc_ = _fit_svc(svc, K, y)
        self.support_ = self.svc_.support_
        self._sv = X[self.support_]
        self._n_fit = len(X)
        self.n_features_in_ = X.shape[1]
        return self

    def _kernel(self, X: Any) -> np.ndarray:
        """(m, n_fit) kernel against the training rows; only support-vector columns are used."""
        check_fitted(self, "svc_")
        X = check_features(X, n_features=self.n_features_in_).astype(np.float64)
        K = np.zeros((len(X), self._n_fit))
        K[:, self.support_] = rbf_kernel(X, self._sv, self.gamma_)
        return K

    def decision_function(self, X: Any) -> np.ndarray:
        """SVC's decision values: (n,) for two classes, (n, n_classes) one-vs-rest otherwise."""
        K = self._kernel(X)
        return self.svc_.decision_function(K)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels by the decision function (as ``SVC.predict``, not the argmax of Platt)."""
        K = self._kernel(X)
        return self.svc_.predict(K)

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, n_classes) Platt probabilities in the order of ``classes_``."""
        if not self.probability:
            raise InvalidDataError(
                "predict_proba needs probability=True (Platt scaling); refit with it, "
                "or use decision_function"
            )
        K = self._kernel(X)
        return self.svc_.predict_proba(K)


def _labels(y: Any, n: int) -> np.ndarray:
    y = check_labels(y, n_samples=n, allow_multilabel=False, allow_names=True)
    return y


@dataclass(frozen=True)
class SVMSelection:
    """C chosen on a validation split: ``Cs`` (P,), ``val_scores`` (P,), ``best_C``,
    ``best_index``, ``metric`` and ``selected_on`` (the split the choice was made on)."""

    Cs: np.ndarray
    val_scores: np.ndarray
    best_C: float
    best_index: int
    metric: str
    selected_on: str


def svm_select_C(
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    *,
    Cs: Any = SVM_C_GRID,
    gamma: str | float = "scale",
    class_weight: str | dict | None = None,
    metric: str = "accuracy",
    selected_on: str = "val",
    default_C: float = 1.0,
) -> SVMSelection:
    """Score one SVM per C on the validation rows; ties go to the C closest to ``default_C``.

    One kernel matrix (gamma from the training rows) serves every C; no Platt scaling (the
    decision function ranks C). ``metric``: "accuracy" or "balanced_accuracy". The test split is
    never an argument; name the split passed as validation in ``selected_on``.
    """
    X_train = check_features(X_train, name="X_train").astype(np.float64)
    X_val = check_features(X_val, name="X_val", n_features=X_train.shape[1]).astype(np.float64)
    y_train, y_val = _labels(y_train, len(X_train)), _labels(y_val, len(X_val))
    Cs = np.asarray(Cs, dtype=np.float64).ravel()
    if len(Cs) == 0 or not (Cs > 0).all():
        raise InvalidDataError(f"Cs must be a non-empty array of positive values; received {Cs!r}")
    if metric not in ("accuracy", "balanced_accuracy"):
        raise InvalidDataError(
            f"metric must be 'accuracy' or 'balanced_accuracy'; received {metric!r}"
        )
    g = _gamma(gamma, X_train)
    K, Kv = rbf_kernel(X_train, X_train, g), rbf_kernel(X_val, X_train, g)
    cw = check_class_weight(class_weight)
    scores = np.empty(len(Cs))
    for p, C in enumerate(Cs):
        pred = _fit_svc(_svc(float(C), cw, False, False, 1e-3, None), K, y_train).predict(Kv)
        if metric == "accuracy":
            scores[p] = float((pred == y_val).mean())
        else:
            scores[p] = float(np.mean([(pred[y_val == c] == c).mean() for c in np.unique(y_val)]))
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    i = int(min(best, key=lambda j: abs(np.log(Cs[j]) - np.log(default_C))))
    return SVMSelection(Cs, scores, float(Cs[i]), i, metric, selected_on)

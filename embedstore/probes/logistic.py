"""Logistic-regression probe (scikit-learn's objective, solved in PyTorch) and the many-shot sweep.

Objective, exactly scikit-learn's ``LogisticRegression(penalty="l2")``:
``C * sum_i loss_i + 0.5 * ||W||^2``, the intercept not penalised; softmax (multinomial) for
multiclass and ordinal tasks, one sigmoid for binary, one sigmoid per label for multilabel (the
same as one binary ``LogisticRegression`` per label). ``tol`` is scikit-learn's: the largest
gradient component of the objective divided by ``C * n``.

The many-shot protocol (Ericsson et al. 2021, ``linusericsson/ssl-transfer`` ``linear.py``) fits
scikit-learn's ``LogisticRegression(solver="lbfgs", multi_class="multinomial", warm_start=True)``
with ``C = 1 / wd`` for ``wd = logspace(-6, 5, 45)``, i.e. scikit-learn's own scaling (sum of losses
times C plus half the squared norm), not a mean loss plus ``wd``. It keeps the first C (in grid
order, C descending) with the best validation score, then refits on train+val. DINOv2 uses
``C = logspace(-6, 5, 45)`` directly. Both grids are below; :func:`logistic_sweep` follows the same
selection rule. All C values are solved together by one batched, preconditioned L-BFGS (see
``_solvers.py``; ``_logistic_fit.py`` turns arrays into its inputs and its solutions into
logits), which replaces the warm starts of the published loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.probes._logistic_fit import (
    DTYPES,
    block_logits,
    check_rows,
    encode,
    fit_many,
    probabilities,
)
from embedstore.probes._sklearn import ProbeEstimator
from embedstore.probes._weights import sample_weights
from embedstore.probes.grids import C_GRID_DINOV2, GRIDS, WD_GRID
from embedstore.probes.selection import score as selection_score
from embedstore.probes.validation import (
    TASK_KINDS,
    check_features,
    check_fitted,
)

__all__ = [
    "C_GRID_DINOV2",
    "GRIDS",
    "OBJECTIVE",
    "TASKS",
    "WD_GRID",
    "LogisticProbe",
    "SweepResult",
    "fit_best",
    "logistic_sweep",
    "refit",
]

TASKS = TASK_KINDS
OBJECTIVE = "C * sum(log-loss) + 0.5 * ||W||^2 (scikit-learn's)"  # named in every record


class LogisticProbe(ProbeEstimator):
    """L2-regularised logistic regression, scikit-learn's objective, fitted by full-batch L-BFGS.

    Parameters: ``C`` inverse regularisation strength; ``task`` one of ``TASKS``; ``max_iter`` and
    ``tol`` as in scikit-learn; ``fit_intercept``; ``class_weight`` None, "balanced" or a dict, as
    scikit-learn's (weights of the loss terms); ``device`` a torch device ("cpu", "cuda");
    ``dtype`` "float32" (fast) or "float64"; ``precondition`` works in the rotated basis of the
    training features (and the representer basis when n < D); False solves the plain primal problem.

    Fitted: ``classes_``, ``coef_`` (n_out, D), ``intercept_`` (n_out,), ``n_iter_`` (int),
    ``n_features_in_``. ``n_out`` is 1 for two classes, the number of classes or labels otherwise.
    """

    coef_: np.ndarray  # set by fit
    intercept_: np.ndarray

    def __init__(
        self,
        *,
        C: float = 1.0,
        task: str = "multiclass",
        max_iter: int = 1000,
        tol: float = 1e-6,
        fit_intercept: bool = True,
        device: str = "cpu",
        dtype: str = "float32",
        precondition: bool = True,
        class_weight: str | dict | None = None,
    ) -> None:
        self.C = C
        self.task = task
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.device = device
        self.dtype = dtype
        self.precondition = precondition
        self.class_weight = class_weight

    def fit(
        self,
        X,
        y,
        *,
        init: LogisticProbe | tuple[np.ndarray, np.ndarray] | None = None,
        rotation: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> LogisticProbe:
        """Fit on X (n, D), y (n,) labels or (n, L) 0/1 for multilabel; ``init`` warm-starts.

        ``rotation``: an orthogonal (D, D) basis to reuse instead of an eigendecomposition of X
        (``SweepResult.rotation``); the solution is the same, only the preconditioning differs.
        ``rows``: fit on ``X[rows]`` (y: their labels) without copying those rows out of X.
        """
        if not self.C > 0:
            raise InvalidDataError(f"C must be positive; received {self.C}.")
        if self.dtype not in DTYPES:
            raise InvalidDataError(
                f"dtype must be one of {tuple(DTYPES)}; received {self.dtype!r}."
            )
        X = check_features(X)
        n = len(X) if rows is None else check_rows(rows, len(X))
        self.classes_, Y, self._link = encode(y, self.task, n)
        sw = sample_weights(self.class_weight, self.classes_, y, task=self.task)
        n_out = Y.shape[1] if self._link == "sigmoid" else len(self.classes_)
        if isinstance(init, LogisticProbe):
            init = (init.coef_, init.intercept_)
        if init is not None and np.shape(init[0]) != (n_out, X.shape[1]):
            raise InvalidDataError(
                f"init coef must have shape {(n_out, X.shape[1])}; received {np.shape(init[0])}. "
                "Warm-start from a probe fitted on the same task, classes and features."
            )
        fitted = fit_many(
            X,
            Y,
            self._link,
            n_out,
            [self.C],
            device=self.device,
            dtype=self.dtype,
            tol=self.tol,
            max_iter=self.max_iter,
            init=init,
            precondition=self.precondition,
            fit_intercept=self.fit_intercept,
            rotation=rotation,
            rows=rows,
            sample_weight=sw,
        )
        self.coef_, self.intercept_ = fitted.coef[0], fitted.intercept[0]
        self.n_iter_ = int(fitted.n_iter[0])
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits: (n,) for two classes, (n, n_out) otherwise."""
        check_fitted(self, "coef_")
        X = check_features(X, n_features=self.n_features_in_)
        z = block_logits(X, None, self.coef_, self.intercept_, np.float64)
        return z[:, 0] if (self._link == "sigmoid" and self.task != "multilabel") else z

    def predict_proba(self, X) -> np.ndarray:
        """(n, n_classes) probabilities; (n, L) per-label probabilities for multilabel."""
        z = self.decision_function(X)
        if self.task == "multilabel":
            return probabilities(z, "sigmoid")
        if self._link == "sigmoid":
            p = probabilities(z, "sigmoid")
            return np.stack([1.0 - p, p], axis=1)
        return probabilities(z, "softmax")

    def predict(self, X) -> np.ndarray:
        """Class labels (n,); a (n, L) 0/1 array for multilabel."""
        z = self.decision_function(X)
        if self.task == "multilabel":
            return (z > 0).astype(np.int64)
        if self._link == "sigmoid":
            return self.classes_[(z > 0).astype(np.int64)]
        return self.classes_[z.argmax(axis=1)]

    def score(self, X, y) -> float:
        """Accuracy; multilabel: mean per-label accuracy (the selection score everywhere)."""
        proba, y = self.predict_proba(X), np.asarray(y)
        if len(y) != len(proba) or (self.task == "multilabel") != (y.ndim == 2):
            raise InvalidDataError(f"y must have {len(proba)} rows like X; received {y.shape}.")
        classes = None if self.task == "multilabel" else self.classes_
        return selection_score(y, proba, classes=classes)


@dataclass(frozen=True)
class SweepResult:
    """One C sweep: ``Cs`` (P,) in grid order, ``val_scores`` (P,), ``n_iter`` (P,), the chosen
    ``best_C`` / ``best_index`` (first best in grid order), ``metric`` and ``selected_on`` (the
    split the choice was made on), and the fitted ``coef`` (P, n_out, D), ``intercept`` (P, n_out).
    """

    Cs: np.ndarray
    val_scores: np.ndarray
    n_iter: np.ndarray
    best_C: float
    best_index: int
    metric: str
    selected_on: str
    coef: np.ndarray
    intercept: np.ndarray
    rotation: np.ndarray | None = None  # (D, D) basis of the training rows, when n > D
    class_weight: str | dict | None = None  # the weighting of the fits (the refit keeps it)


def _score(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, metric) -> float:
    if callable(metric):
        return float(metric(y, proba))
    if metric == "accuracy":  # multilabel: mean per-label accuracy, as selection.score
        return selection_score(y, proba) if pred.ndim == 2 else float((pred == y).mean())
    if metric == "balanced_accuracy":  # mean per-class recall ("mean per-class accuracy")
        if pred.ndim == 2:
            raise InvalidDataError(
                "balanced_accuracy is not defined for multilabel; use 'accuracy' or a callable."
            )
        return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))
    raise InvalidDataError(
        "metric must be 'accuracy', 'balanced_accuracy' or a callable(y_true, proba); "
        f"received {metric!r}."
    )


def logistic_sweep(
    X_train,
    y_train,
    X_val,
    y_val,
    *,
    task: str = "multiclass",
    Cs=GRIDS["ericsson"],
    metric="accuracy",
    device: str = "cpu",
    dtype: str = "float32",
    tol: float = 1e-4,
    max_iter: int = 1000,
    selected_on: str = "val",
    train_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    class_weight: str | dict | None = None,
) -> SweepResult:
    """Fit one probe per C on the training split and score each on the validation split.

    X_train (n, D), X_val (m, D); labels as in :meth:`LogisticProbe.fit`. ``tol`` / ``max_iter``
    default to scikit-learn's / the benchmark's settings. The test split is never an argument; name
    the split passed as validation in ``selected_on`` (recorded in the result). Ties go to the first
    C in ``Cs`` order, as in ssl-transfer's loop. ``train_rows`` / ``val_rows``: use those rows of
    X_train / X_val (y_train / y_val are their labels) without copying them out (one feature
    matrix may be passed as both).
    """
    X_train = check_features(X_train, name="X_train")
    X_val = check_features(X_val, name="X_val", n_features=X_train.shape[1])
    n = len(X_train) if train_rows is None else check_rows(train_rows, len(X_train))
    m = len(X_val) if val_rows is None else check_rows(val_rows, len(X_val))
    Cs = np.asarray(Cs, dtype=np.float64).ravel()
    if len(Cs) == 0 or not (Cs > 0).all():
        raise InvalidDataError(f"Cs must be a non-empty array of positive values; received {Cs!r}.")
    classes, Y, link = encode(y_train, task, n)
    sw = sample_weights(class_weight, classes, y_train, task=task)
    y_val = np.asarray(y_val)
    if len(y_val) != m:
        raise InvalidDataError(
            f"X_val and y_val must have the same length; received {m} and {len(y_val)}."
        )
    n_out = Y.shape[1] if link == "sigmoid" else len(classes)
    fitted = fit_many(
        X_train,
        Y,
        link,
        n_out,
        Cs,
        device=device,
        dtype=dtype,
        tol=tol,
        max_iter=max_iter,
        rows=train_rows,
        sample_weight=sw,
    )
    coef, intercept = fitted.coef.astype(np.float32), fitted.intercept.astype(np.float32)
    z = block_logits(X_val, val_rows, coef, intercept, np.float32)  # (P, m, K)
    scores = np.empty(len(Cs))
    for p in range(len(Cs)):  # (m, K) each
        if task == "multilabel":
            proba, pred = probabilities(z[p], "sigmoid"), (z[p] > 0).astype(np.int64)
        elif link == "sigmoid":
            s = probabilities(z[p, :, 0], "sigmoid")
            proba, pred = np.stack([1 - s, s], axis=1), classes[(z[p, :, 0] > 0).astype(np.int64)]
        else:
            proba, pred = probabilities(z[p], "softmax"), classes[z[p].argmax(axis=1)]
        scores[p] = _score(y_val, proba, pred, metric)
    best = int(np.argmax(scores))
    return SweepResult(
        Cs=Cs,
        val_scores=scores,
        n_iter=fitted.n_iter,
        best_C=float(Cs[best]),
        best_index=best,
        metric=metric if isinstance(metric, str) else getattr(metric, "__name__", "custom"),
        selected_on=selected_on,
        coef=fitted.coef,
        intercept=fitted.intercept,
        rotation=(
            fitted.basis.V.cpu().numpy()
            if fitted.basis.V.shape[0] == fitted.basis.V.shape[1]
            else None
        ),
        class_weight=class_weight,
    )


def fit_best(sweep: SweepResult, X_train, y_train, X_val, y_val, **options) -> LogisticProbe:
    """The protocol's last step: :func:`refit` at ``sweep.best_C`` on train+val (``options``:
    task, device, dtype, tol, max_iter as in :func:`refit`). Score the result on the test split."""
    X = np.concatenate(
        [check_features(X_train, name="X_train"), check_features(X_val, name="X_val")]
    )
    return refit(sweep, X, np.concatenate([np.asarray(y_train), np.asarray(y_val)]), **options)


def refit(
    sweep: SweepResult,
    X,
    y,
    *,
    task: str = "multiclass",
    device: str = "cpu",
    dtype: str = "float32",
    tol: float = 1e-4,
    max_iter: int = 1000,
    rows: np.ndarray | None = None,
) -> LogisticProbe:
    """Fit at ``sweep.best_C`` on X (n, D) = train+val rows (or ``X[rows]``, y their labels),
    warm-started from the sweep's solution at that C and reusing its rotation."""
    probe = LogisticProbe(
        C=sweep.best_C,
        task=task,
        device=device,
        dtype=dtype,
        tol=tol,
        max_iter=max_iter,
        class_weight=sweep.class_weight,
    )
    init = (sweep.coef[sweep.best_index], sweep.intercept[sweep.best_index])
    return probe.fit(X, y, init=init, rotation=sweep.rotation, rows=rows)

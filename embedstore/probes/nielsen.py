"""The classifiers of Nielsen et al. 2023 on frozen features, with their fixed hyper-parameters.

Source: the authors' code, github.com/IPMI-ICNS-UKE/sparsam, ``reproducability/parameter.py``
(``CLASSIFIERS``) and ``reproducability/reproduce_results.py`` (``fit_classifier``): for each
number of labelled samples per class (1, 5, 10, 25, 50, 100, 250, 500, 1000; ``uniform_train_test_
splitting`` in ``sparsam/helper.py`` takes every sample of a class that has fewer), each classifier
is a ``Pipeline([PowerTransformer(), PCA(), classifier])`` fitted on the labelled rows:

- ``SVC(kernel="rbf", C=1, gamma="scale", class_weight="balanced", probability=True,
  break_ties=True)``,
- ``KNeighborsClassifier(weights="distance", n_neighbors=5 * n_classes)`` (``fit_classifier``
  overrides parameter.py's ``n_neighbors=8`` with 5 x the number of classes),
- ``LogisticRegression(C=2.5, class_weight="balanced", max_iter=10000)``,

and scored by the argmax of ``predict_proba`` on the test split (balanced accuracy is the paper's
headline). No hyper-parameter is selected.

Here the same pipeline runs once per labelled subset with the power transform and PCA fitted once
and shared by the three classifiers (they are deterministic, so this changes nothing), with
faster equal parts: the Yeo-Johnson lambdas of all columns in one vectorised search
(:mod:`~embedstore.probes.power`), scikit-learn's ``PCA`` (the same LAPACK SVD), the SVM as
libsvm on a kernel computed by one matrix product (:mod:`~embedstore.probes.svm`), scikit-learn's
own ``KNeighborsClassifier``, and the logistic regression with the batched L-BFGS of
:mod:`~embedstore.probes.logistic` (scikit-learn's objective and class weights).

Everything runs in float64 on the stored rows cast to float64: scikit-learn's pipeline fed
``X.astype(np.float64)``. (Fed the stored float32, scikit-learn keeps float32 and, at 1 sample per
class, its own StandardScaler refuses the power transform's output: lambdas fitted on a handful of
rows reach the overflow-safe bounds and test rows transform to ~1e40.) A cell whose transform is
not finite even in float64 raises :class:`~embedstore.errors.CellFailedError`, which the sweep
records as not computed.

Departures, documented in every record (``NIELSEN_NOTES``):

- kNN with fewer labelled rows than ``5 * n_classes`` (1 sample per class): scikit-learn raises
  "Expected n_neighbors <= n_samples_fit", so the authors' code cannot run that cell; here k is
  capped at the number of labelled rows (all of them vote, weighted by 1 / distance).
- Every seed gets its own subset. (In ``fit_classifier`` the classifier loop sits after the seed
  loop, so only the last seed's subset is fitted.)
- The SVM's Platt folds are seeded (``random_state`` = the subset's seed); SVC's default (None)
  gives different probabilities on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedstore.errors import CellFailedError, InvalidDataError
from embedstore.probes.power import YeoJohnson
from embedstore.probes.presets import PROTOCOLS
from embedstore.probes.validation import check_features, check_labels

__all__ = [
    "NIELSEN_CLASSIFIERS",
    "NIELSEN_NOTES",
    "NIELSEN_SHOTS",
    "NielsenFeatures",
    "nielsen_classifier",
    "nielsen_classify",
    "nielsen_fit_predict",
    "nielsen_transform",
]

# The settings are the preset's (embedstore/probes/presets.py), so records, `embedstore protocols` and
# this code read one object.
NIELSEN_SHOTS = tuple(PROTOCOLS["nielsen"].subsets["shots"])
NIELSEN_CLASSIFIERS = {m: PROTOCOLS["nielsen"].hyperparameters[m] for m in ("svm", "knn", "logreg")}
NIELSEN_NOTES = (
    "fixed hyper-parameters, no selection (the authors' protocol)",
    "Yeo-Johnson PowerTransformer(standardize=True) -> PCA(all components) fitted on the "
    "labelled rows, shared by the three classifiers",
    "kNN: k capped at the number of labelled rows where 5 * n_classes is more",
    "predictions: argmax of predict_proba (as the authors' fit_classifier)",
    "computed in float64 (scikit-learn's pipeline on the rows cast to float64)",
)


class NielsenFeatures:
    """Yeo-Johnson power transform (standardised) then PCA with all components, fitted on X.

    Computed in float64 whatever the stored dtype: scikit-learn's pipeline on the same rows cast
    to float64 (``PowerTransformer()`` -> ``PCA()`` on ``X.astype(np.float64)``), the same
    overflow-safe lambda bounds included. On a handful of labelled rows (1 per class) the
    likelihood of many columns keeps rising towards a bound, the lambdas reach |lambda| ~ 10^3
    and test rows outside the labelled range transform to ~10^40: finite in float64, infinite in
    float32 (where scikit-learn's own float32 pipeline refuses them too). Where even float64
    overflows, :class:`~embedstore.errors.CellFailedError` says so.

    Fitted: ``power_`` (:class:`~embedstore.probes.power.YeoJohnson`), ``pca_``
    (``sklearn.decomposition.PCA``, ``min(n, D)`` components).
    """

    def fit_transform(self, X: Any) -> np.ndarray:
        """Fit on the labelled rows X (n, D); returns their (n, min(n, D)) components, float64."""
        from sklearn.decomposition import PCA

        X = check_features(X).astype(np.float64)
        self.power_ = YeoJohnson(standardize=True, dtype=np.float64)
        Z = _finite(self.power_.fit_transform(X), self.power_, "labelled")
        self.pca_ = PCA()
        return _finite(self.pca_.fit_transform(Z), self.power_, "labelled", step="PCA")

    def transform(self, X: Any) -> np.ndarray:
        """Components (m, min(n, D)) of new rows, float64."""
        Z = _finite(self.power_.transform(np.asarray(X, dtype=np.float64)), self.power_, "test")
        return _finite(self.pca_.transform(Z), self.power_, "test", step="PCA")


def _finite(Z: np.ndarray, power: YeoJohnson, rows: str, *, step: str = "") -> np.ndarray:
    """Z itself, or CellFailedError naming the columns and lambdas that overflowed float64."""
    bad = ~np.isfinite(Z)
    if not bad.any():
        return Z
    cols = np.flatnonzero(bad.any(axis=0))
    where = (
        f"after the PCA of the power-transformed {rows} rows"
        if step
        else f"in {len(cols)} column(s) of the {rows} rows' Yeo-Johnson transform"
    )
    lam = np.abs(power.lambdas_[cols]) if not step else np.abs(power.lambdas_)
    raise CellFailedError(
        f"Nielsen pipeline: {int(bad.sum())} value(s) are not finite in float64 {where} "
        f"(lambdas fitted on {power.n_samples_} labelled rows reach |lambda| = {lam.max():.3g}); "
        "scikit-learn's PowerTransformer -> PCA cannot compute this cell either. "
        "Use more labelled samples per class for this feature set"
    )


def nielsen_classifier(name: str, *, n_classes: int, n_train: int, seed: int = 0):
    """The authors' classifier ``name`` (``NIELSEN_CLASSIFIERS``), to fit on PCA components."""
    if name == "svm":
        from embedstore.probes.svm import SVMProbe

        return SVMProbe(
            C=1.0,
            gamma="scale",
            class_weight="balanced",
            probability=True,
            break_ties=True,
            random_state=seed,
        )
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(weights="distance", n_neighbors=min(5 * n_classes, n_train))
    if name == "logreg":
        from embedstore.probes.logistic import LogisticProbe

        # scikit-learn's tol (1e-4) and max_iter; float64 as scikit-learn computes
        return LogisticProbe(
            C=2.5, class_weight="balanced", max_iter=10000, tol=1e-4, dtype="float64"
        )
    raise InvalidDataError(
        f"Nielsen classifier must be one of {', '.join(NIELSEN_CLASSIFIERS)}; received {name!r}"
    )


@dataclass(frozen=True)
class NielsenFit:
    """One classifier's test probabilities (m, n_classes) and the settings it ran with."""

    proba: np.ndarray
    hyperparameters: dict[str, Any]


def nielsen_transform(X_train: Any, X_test: Any) -> tuple[np.ndarray, np.ndarray]:
    """Fit the power transform and PCA on the labelled rows; (n, r) and (m, r) components."""
    X_train = check_features(X_train, name="X_train")
    X_test = check_features(X_test, name="X_test", n_features=X_train.shape[1])
    feats = NielsenFeatures()
    return feats.fit_transform(X_train), feats.transform(X_test)


def nielsen_classify(
    name: str, Z: np.ndarray, y: Any, Zt: np.ndarray, *, n_classes: int, seed: int = 0
) -> NielsenFit:
    """Fit classifier ``name`` on components Z (n, r), labels y; probabilities of Zt (m, r) with
    one column per dataset class (0 for a class absent from y)."""
    y = check_labels(y, n_samples=len(Z), name="y_train", allow_multilabel=False)
    if len(np.unique(y)) < 2:
        raise InvalidDataError("the Nielsen classifiers need at least 2 classes in y_train")
    model = nielsen_classifier(name, n_classes=n_classes, n_train=len(Z), seed=seed)
    model.fit(Z, y)
    proba = np.zeros((len(Zt), n_classes))
    proba[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(Zt)
    hyper = dict(NIELSEN_CLASSIFIERS[name])
    if name == "knn":
        hyper["n_neighbors"] = int(model.n_neighbors)
    hyper["n_components"] = int(Z.shape[1])
    return NielsenFit(proba, hyper)


def nielsen_fit_predict(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    *,
    n_classes: int,
    classifiers: tuple[str, ...] = tuple(NIELSEN_CLASSIFIERS),
    seed: int = 0,
) -> dict[str, NielsenFit]:
    """Fit the pipeline on the labelled rows and return each classifier's test probabilities.

    Args:
        X_train: (n, D) labelled rows; y_train: (n,) int classes in [0, n_classes).
        X_test: (m, D) rows to score.
        n_classes: classes of the dataset (k = 5 x this for kNN, as the authors).
        seed: seeds the SVM's Platt folds.

    Returns:
        {classifier: NielsenFit}; the transform is fitted once for all of them.
    """
    Z, Zt = nielsen_transform(X_train, X_test)
    return {
        name: nielsen_classify(name, Z, y_train, Zt, n_classes=n_classes, seed=seed)
        for name in classifiers
    }

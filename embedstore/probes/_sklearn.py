"""The scikit-learn estimator contract for the probes: ``get_params``/``set_params``, tags, clone.

Every probe derives from :class:`ProbeEstimator`, i.e. from ``sklearn.base.BaseEstimator`` and
``ClassifierMixin``: parameters are the keyword-only arguments of ``__init__``, stored unchanged
(validated in ``fit``), so ``sklearn.base.clone``, ``Pipeline``, ``GridSearchCV`` and
``cross_val_score`` work. ``__sklearn_tags__`` (scikit-learn >= 1.6's tag API) says what each
probe accepts; ``tests/probes/test_sklearn_api.py`` runs ``check_estimator`` on every probe and
lists the checks that do not apply, with the reason.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from embedstore.errors import NotFittedError as EmbedstoreNotFittedError

__all__ = ["ProbeEstimator", "ProbeNotFittedError"]


class ProbeEstimator(ClassifierMixin, BaseEstimator):
    """Base class of the probes: a scikit-learn classifier.

    Subclasses set ``_multilabel`` (accepts (n, L) 0/1 targets) and may override
    ``__sklearn_tags__``. ``score`` stays each probe's own (documented per probe).
    """

    _multilabel = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = self._multilabel
        tags.target_tags.multi_output = self._multilabel
        tags.target_tags.single_output = True
        tags.non_deterministic = False
        return tags


class ProbeNotFittedError(EmbedstoreNotFittedError, NotFittedError):
    """A probe used before ``fit``: embedstore's ``NotFittedError`` and scikit-learn's."""

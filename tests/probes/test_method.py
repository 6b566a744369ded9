"""The method registry and what `probe` does with it: --method all, --device auto, one criterion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.data.subsets import LabelSetting, parse_settings
from embedstore.devices import resolve_device
from embedstore.engine.probe import evaluate_probes
from embedstore.errors import InvalidDataError, LabelsError, NotFittedError, ProtocolError
from embedstore.probes.dvme import DVMEClassifier
from embedstore.probes.knn import KNNClassifier, _resolve_backend
from embedstore.probes.logistic import LogisticProbe, logistic_sweep
from embedstore.probes.method import Method, get_method, method_names, parse_methods, register
from embedstore.probes.metrics import classification_metrics
from embedstore.probes.options import ProbeOptions
from tests.conftest import write_embeddings

runner = CliRunner()


def _small_store(path, n_test=48):
    """3 classes, 96 train / 24 val / n_test test rows: too few test rows for 20-shot episodes."""
    rng = np.random.default_rng(0)
    n = 120 + n_test
    y = np.arange(n) % 3
    split = np.repeat([0, 1, 2], [96, 24, n_test]).astype(np.uint8)
    store = create_store(path)
    store.add_dataset(
        "d",
        ids=[f"s{i}" for i in range(n)],
        labels=y,
        split=split,
        task="multiclass",
        class_names=["x", "y", "z"],
    )
    X = np.eye(3)[y] @ rng.normal(size=(3, 8)) + rng.normal(size=(n, 8))
    write_embeddings(store, "d", "a", X.astype(np.float32))
    return store


def test_registry_order_names_and_errors():
    nielsen = ("nielsen-svm", "nielsen-knn", "nielsen-logreg")  # probes/methods/svm_nielsen.py
    assert method_names() == ("proto", "fewshot", "knn", "logreg", "dvme", "svm", *nielsen)
    assert method_names(sweep=True) == ("proto", "knn", "logreg", "dvme", "svm", *nielsen)
    with pytest.raises(InvalidDataError, match="'knnn' is not one of proto, fewshot"):
        get_method("knnn")
    with pytest.raises(InvalidDataError, match="embedstore probe --method fewshot"):
        get_method("fewshot", sweep=True)
    with pytest.raises(InvalidDataError, match="registered twice"):

        @register
        class Again(Method):
            name = "knn"

    # one parse for a comma list, a list and 'all'; repeats dropped; task kinds checked
    assert [m.name for m in parse_methods(" knn,logreg,knn ", "binary")[0]] == ["knn", "logreg"]
    assert parse_methods(["dvme"], "binary") == ([get_method("dvme")], False)
    ml, is_all = parse_methods("all", "multilabel")
    assert is_all and [m.name for m in ml] == ["knn", "logreg", "dvme"]
    with pytest.raises(ProtocolError, match="multilabel"):
        parse_methods("proto", "multilabel")


def test_label_setting_forms():
    s = LabelSetting("fraction", 0.01)
    assert s == ("fraction", 0.01) and s.display() == "1%" and s.record() == {"fraction": 0.01}
    assert LabelSetting.from_record({"shots": 5, "n_labelled": 15}) == ("shots", 5)
    assert LabelSetting.from_record({}) is None
    assert parse_settings("0.1, 0.01", "5") == [
        ("fraction", 0.01),
        ("fraction", 0.1),
        ("shots", 5),
    ]
    with pytest.raises(InvalidDataError, match="--shots expects comma-separated numbers"):
        parse_settings(None, "1,x")
    with pytest.raises(InvalidDataError, match="give --fractions"):
        parse_settings(None, None)


def test_one_error_class_per_mistake():
    X, y = np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 2
    for est in (KNNClassifier(), LogisticProbe(), DVMEClassifier(widths=[4])):
        with pytest.raises(NotFittedError, match="not fitted"):
            est.predict_proba(X)
    for est in (LogisticProbe(task="binary"), DVMEClassifier(widths=[4], task="binary")):
        with pytest.raises(LabelsError, match="exactly 2 classes"):
            est.fit(X, np.arange(20) % 3)
        with pytest.raises(LabelsError, match="at least 2 classes"):
            est.fit(X, np.zeros(20, int))
    with pytest.raises(InvalidDataError, match="task must be one of"):
        LogisticProbe(task="regression").fit(X, y)


def test_multilabel_score_is_mean_per_label_accuracy_in_every_probe():
    """One criterion: the logistic and DVME probes used subset accuracy before (issue 14)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    Y = (X[:, :3] + 1.2 * rng.normal(size=(300, 3)) > 0).astype(np.uint8)
    tr, te = slice(0, 200), slice(200, None)
    models = [
        KNNClassifier(k=10).fit(X[tr], Y[tr]),
        LogisticProbe(task="multilabel").fit(X[tr], Y[tr]),
        DVMEClassifier(widths=[6], task="multilabel", proj_dim=8, n_heads=2, max_epochs=5).fit(
            X[tr], Y[tr]
        ),
    ]
    for model in models:
        proba = model.predict_proba(X[te])
        reported = classification_metrics(Y[te], proba, task="multilabel", n_bootstrap=0)
        per_label = np.mean((proba >= 0.5) == Y[te])
        subset = np.mean(((proba >= 0.5) == Y[te]).all(axis=1))
        assert abs(per_label - subset) > 0.1  # the two criteria differ on this data
        assert model.score(X[te], Y[te]) == pytest.approx(reported["accuracy"].value)
        assert model.score(X[te], Y[te]) == pytest.approx(per_label)
    # the logistic grid is ranked by the same criterion, from the sweep's own coefficients
    sw = logistic_sweep(X[tr], Y[tr], X[te], Y[te], task="multilabel", Cs=[1e-3, 1.0, 1e3])
    for p in range(3):
        pred = (X[te] @ sw.coef[p].T + sw.intercept[p] > 0).astype(int)
        assert sw.val_scores[p] == pytest.approx(np.mean(pred == Y[te]))


def test_method_all_runs_every_feasible_method_and_names_the_others(tmp_path):
    store = _small_store(tmp_path / "s.zarr")
    skipped = []
    res = evaluate_probes(
        store,
        "d",
        [["a"]],
        "all",
        ProbeOptions(n_bootstrap=0),
        on_skip=lambda m, why: skipped.append((m, why)),
    )
    assert [r.method for r in res] == ["proto", "knn", "logreg"]  # dvme: fusions only
    assert [m for m, _ in skipped] == ["fewshot"]
    assert "20-shot" in skipped[0][1] and "largest feasible --shots (k_shot)" in skipped[0][1]
    with pytest.raises(
        ProtocolError, match=r"largest feasible --shots \(k_shot\)"
    ):  # asked by name: refused
        evaluate_probes(store, "d", [["a"]], "fewshot,knn", ProbeOptions(n_bootstrap=0))
    out = runner.invoke(app, ["probe", store.location, "-d", "d", "-b", "a", "--json"])
    assert out.exit_code == 0, out.output
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert [json.loads(ln)["method"] for ln in lines if ln.startswith("{")] == [
        r.method for r in res
    ]
    notes = [ln for ln in lines if not ln.startswith("{")]
    assert len(notes) == 1 and notes[0].startswith("skipped fewshot:")


def test_probe_device_defaults_to_auto(tmp_path):
    store = _small_store(tmp_path / "s.zarr", n_test=120)
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InvalidDataError, match="device must be"):
        resolve_device("tpu")
    help_text = " ".join(runner.invoke(app, ["probe", "--help"]).output.split())
    assert "[default: auto]" in help_text
    base = ["probe", store.location, "-d", "d", "-b", "a", "--method", "knn,logreg", "--json"]
    auto = runner.invoke(app, base)
    explicit = runner.invoke(app, [*base, "--device", resolve_device("auto")])
    assert auto.exit_code == 0 and explicit.exit_code == 0, auto.output
    strip = [
        {**json.loads(ln), "embedstore_version": 0, "seconds": 0} for ln in auto.output.splitlines()
    ]
    again = [
        {**json.loads(ln), "embedstore_version": 0, "seconds": 0}
        for ln in explicit.output.splitlines()
    ]
    assert strip == again and len(strip) == 2
    bad = runner.invoke(app, [*base[:-1], "--device", "tpu"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1


def test_knn_auto_backend_picks_faiss_only_on_a_gpu_with_faiss_gpu():
    assert _resolve_backend("auto", "cuda", faiss_gpu=True) == "faiss"
    assert _resolve_backend("auto", "cuda:1", faiss_gpu=False) == "torch"
    assert _resolve_backend("auto", "cpu", faiss_gpu=True) == "torch"
    assert _resolve_backend("torch", "cuda", faiss_gpu=True) == "torch"
    assert _resolve_backend("auto", "cpu") == "torch"


def test_api_device_defaults_to_auto_like_the_cli(tmp_path):
    store = _small_store(tmp_path / "s.zarr", n_test=120)
    assert ProbeOptions().device == "auto"
    default = evaluate_probes(store, "d", [["a"]], "knn", ProbeOptions(n_bootstrap=0))
    explicit = evaluate_probes(
        store, "d", [["a"]], "knn", ProbeOptions(n_bootstrap=0, device=resolve_device("auto"))
    )
    assert [r.metrics for r in default] == [r.metrics for r in explicit]

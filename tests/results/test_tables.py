"""Paper tables from records: cells against numpy, markers and notes for what a reader must know."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from embedstore.errors import InvalidDataError
from embedstore.results.records import ProbeResult
from embedstore.results.table_formats import to_csv, to_latex, to_markdown
from embedstore.results.tables import SMALL_TEST, build_tables


def _rec(features, value, seed, *, labels=None, method="logreg", n_test=200, ci=None, sel="cv"):
    lo, hi = ci if ci else (None, None)
    return ProbeResult(
        dataset="d",
        features=tuple(features.split("+")),
        method=method,
        protocol={},
        metrics={"accuracy": {"value": value, "ci_low": lo, "ci_high": hi}},
        hyperparameters={"C": 1.0},
        selected_on=sel,
        seed=seed,
        n_train=10,
        n_test=n_test,
        labels=labels if labels is not None else {},
    )


def _frac(f, seed, digest=None, per_class=None):
    return {
        "fraction": f,
        "n_labelled": sum((per_class or {"x": 5, "y": 5}).values()),
        "per_class": per_class or {"x": 5, "y": 5},
        "capped_classes": [],
        "subset_digest": digest or f"{f}-{seed}",
    }


A = [0.70, 0.72, 0.69]
B = [0.60, 0.65, 0.62]


def _sweep():
    recs = [_rec("a", v, s, labels=_frac(0.1, s)) for s, v in enumerate(A)]
    recs += [_rec("b", v, s, labels=_frac(0.1, s)) for s, v in enumerate(B)]
    # 100%: the same subset for every seed; b ties a at the printed precision
    recs += [_rec(f, 0.8, s, labels=_frac(1.0, s, digest="all")) for f in "ab" for s in range(3)]
    return recs


def test_cells_are_mean_and_sample_sd_over_seeds():
    (t,) = build_tables(_sweep())
    cell = t.cells[("a", ("fraction", 0.1))]
    assert cell.mean == pytest.approx(np.mean(A))
    assert cell.spread == pytest.approx(np.std(A, ddof=1))
    assert cell.spread_kind == "sd" and cell.n_seeds == 3 and cell.n_test == (200, 200)
    md = to_markdown([t])
    assert f"**{np.mean(A) * 100:.1f} ± {np.std(A, ddof=1) * 100:.1f}**" in md  # best: bold
    assert f"| {np.mean(B) * 100:.1f} ± {np.std(B, ddof=1) * 100:.1f} |" in md
    assert "10% (n=10)" in md and "| a | 200 |" in md  # labelled n per column, test n per row


def test_one_subset_cells_have_no_spread_and_say_so():
    (t,) = build_tables(_sweep())
    full = t.cells[("a", ("fraction", 1.0))]
    assert full.spread is None and full.spread_kind == "one subset" and "one_subset" in full.flags
    md = to_markdown([t])
    assert "**80.0**†" in md and md.count("**80.0**†") == 2  # a tie: both best
    assert "† one subset" in md
    rows = list(csv.DictReader(io.StringIO(to_csv([t]))))
    full_rows = [r for r in rows if r["setting"] == "100%"]
    assert {r["spread_kind"] for r in full_rows} == {"one subset"}
    assert {r["spread"] for r in full_rows} == {""} and {r["best"] for r in full_rows} == {"1"}


def test_capped_and_uneven_shots_show_what_was_drawn():
    capped = {"shots": 100, "n_labelled": 141, "per_class": {"x": 41, "y": 100}}
    capped["capped_classes"] = ["x"]
    recs = [_rec("a", 0.7 + s / 100, s, labels={**capped, "subset_digest": str(s)}) for s in (0, 1)]
    # patient groups: 1-shot drew 1 or 2 rows of class y
    for s, y in ((0, 1), (1, 2)):
        one = {"shots": 1, "n_labelled": 1 + y, "per_class": {"x": 1, "y": y}, "capped_classes": []}
        recs.append(_rec("a", 0.6, s, labels={**one, "subset_digest": f"g{s}"}, sel="default C=1"))
    (t,) = build_tables(recs)
    assert t.cells[("a", ("shots", 100))].flags == ("capped_classes",)
    assert t.cells[("a", ("shots", 1))].flags == ("uneven_classes", "fallback")
    assert t.cells[("a", ("shots", 1))].per_class == {"x": (1, 1), "y": (1, 2)}
    md = to_markdown([t])
    assert "‡" in md and "§" in md and "¶" in md
    assert "100-shot: drawn per class over seeds: x 41, y 100" in md
    assert "1-shot: drawn per class over seeds: x 1, y 1–2" in md
    assert "1-shot (n=2–3)" in md  # labelled n differs between seeds


def test_a_small_test_split_is_warned_about():
    (t,) = build_tables([_rec("a", 0.9, s, labels=_frac(0.5, s), n_test=20) for s in range(2)])
    assert 20 < SMALL_TEST
    assert any(n.startswith("small test split: 20 rows") for n in t.notes)
    (big,) = build_tables([_rec("a", 0.9, s, labels=_frac(0.5, s), n_test=500) for s in range(2)])
    assert not big.notes


def test_a_single_probe_record_shows_its_own_ci():
    (t,) = build_tables([_rec("a", 0.9, 0, ci=(0.86, 0.94), method="knn")])
    cell = t.cells[("a", None)]
    assert cell.spread_kind == "ci95" and cell.spread == pytest.approx(0.04)
    md = to_markdown([t])
    assert "all labels" in md and "90.0 ± 4.0" in md and "95% CI" in md


def test_latex_is_booktabs_with_escaped_text():
    (t,) = build_tables(_sweep())
    tex = to_latex([t])
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert r"\textbf{" in tex and r"\textsuperscript{\dag}" in tex
    assert r"10\%" in tex and " 10%" not in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == 2 and all(line.count("&") == 1 + len(t.settings) for line in body)


def test_unknown_metric_is_refused():
    with pytest.raises(InvalidDataError, match="accuracy, balanced_accuracy"):
        build_tables(_sweep(), metric="roc_auc")


def test_interval_unit_and_method_in_the_caption():
    r = _rec("a", 0.9, 0, method="knn")
    r.metrics["accuracy"].update(
        ci_low=0.8, ci_high=0.95, ci_unit="patient", ci_method="percentile bootstrap over patients"
    )
    (t,) = build_tables([r])
    md = to_markdown([t])
    assert "percentile bootstrap; unit: patient" in md


def test_absent_class_and_not_estimable_auc_are_footnoted_in_every_format():
    from dataclasses import replace

    from embedstore.results.table_formats import to_csv

    r = _rec("a", 0.9, 0, method="knn", ci=(0.8, 0.95))
    auc = {"value": None, "ci_low": None, "ci_high": None, "reason": "class 2: 0 test images"}
    r = replace(r, metrics={**r.metrics, "auc": auc}, caveats={"absent_classes": ["mel"]})
    (t,) = build_tables([r])
    assert "absent_classes" in t.cells[("a", None)].flags
    md, tex = to_markdown([t]), to_latex([t])
    assert "90.0 ± 7.5∅" in md and "∅ no test image of: mel" in md
    assert r"\textsuperscript{$\emptyset$}" in tex
    (t_auc,) = build_tables([r], metric="auc")  # every cell is a dash, and the note says why
    md = to_markdown([t_auc])
    assert "| a | — | — |" in md
    assert "auc not estimable (class 2: 0 test images)" in md
    assert to_csv([t_auc]).count("\n") == 1  # only the header: no number was made up

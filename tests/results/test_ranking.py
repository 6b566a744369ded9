"""Ranks across datasets against the reference packages: scipy (Friedman, Wilcoxon),
scikit-posthocs (Nemenyi), statsmodels (Holm), and Demšar's own worked numbers."""

from __future__ import annotations

import numpy as np
import pytest
import scikit_posthocs as sp
from scipy.stats import friedmanchisquare, wilcoxon
from statsmodels.stats.multitest import multipletests

from embedstore.results.cd_diagram import cd_figure, cliques, figure_svg, plot_cd
from embedstore.results.ranking import nemenyi_cd, rank_feature_sets
from embedstore.results.study_table import render_study, study_tables

from .conftest import study_records

FEATURES = ["dino", "swav", "supervised", "moco"]


def _values(n_datasets: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    strength = {"dino": 0.05, "swav": 0.03, "supervised": 0.0, "moco": 0.01}
    return {
        f"d{i}": {f: 0.7 + strength[f] + rng.normal(0, 0.02) for f in FEATURES}
        for i in range(n_datasets)
    }


def test_demsar_critical_difference():
    # Demšar (2006), section 3.2.2: q_0.05 = 2.569 for k = 4; his example has N = 14: CD = 1.25
    assert nemenyi_cd(4, 14) == pytest.approx(2.569 * np.sqrt(4 * 5 / (6 * 14)), abs=1e-3)
    assert round(nemenyi_cd(4, 14), 2) == 1.25


def test_friedman_nemenyi_wilcoxon_holm_match_the_references():
    recs = study_records(_values(8))
    (table,) = study_tables(recs)
    rk = rank_feature_sets(table)
    V = np.array([[table.values()[d][f] for f in FEATURES] for d in table.datasets])  # (8, 4)
    ref = friedmanchisquare(*V.T)
    assert rk.friedman_stat == pytest.approx(ref.statistic, abs=1e-9)
    assert rk.friedman_p == pytest.approx(ref.pvalue, abs=1e-6)
    nem = sp.posthoc_nemenyi_friedman(V)
    raw = []
    for pt in rk.pairs:
        i, j = FEATURES.index(pt.a), FEATURES.index(pt.b)
        assert pt.nemenyi_p == pytest.approx(nem.iloc[i, j], abs=1e-6), (pt.a, pt.b)
        w = wilcoxon(V[:, i], V[:, j]).pvalue
        assert pt.wilcoxon_p == pytest.approx(w, abs=1e-6)
        raw.append(w)
    holm = multipletests(raw, method="holm")[1]
    assert [pt.wilcoxon_p_holm for pt in rk.pairs] == pytest.approx(holm.tolist(), abs=1e-9)
    # ranks: 1 = best, averaged per dataset; the order is by average rank
    for d in table.datasets:
        best = max(FEATURES, key=lambda f: table.values()[d][f])
        assert rk.ranks[d][best] == 1.0
    assert rk.features[0] == "dino" and sum(rk.mean_rank.values()) == pytest.approx(10.0)
    assert any("rough under 10" in n for n in rk.notes)


def test_friedman_tie_correction_matches_scipy():
    V = np.array([[0.8, 0.8, 0.7], [0.9, 0.85, 0.85], [0.7, 0.6, 0.6], [0.75, 0.7, 0.72]])
    values = {f"d{i}": dict(zip(["a", "b", "c"], row, strict=True)) for i, row in enumerate(V)}
    (table,) = study_tables(study_records(values, seeds=(0,), noise=0.0))
    rk = rank_feature_sets(table)
    ref = friedmanchisquare(*V.T)
    assert rk.friedman_p == pytest.approx(ref.pvalue, abs=1e-6)


def test_too_few_datasets_say_so_instead_of_a_p_value():
    (table,) = study_tables(study_records(_values(2)))
    rk = rank_feature_sets(table)
    assert rk.friedman_p is None and rk.cd is None
    assert all(p.wilcoxon_p is None and p.nemenyi_p is None for p in rk.pairs)
    text = " ".join(rk.notes)
    assert "Friedman/Nemenyi: not tested - 2 dataset(s)" in text
    assert "Wilcoxon signed-rank: not tested" in text


def test_incomplete_datasets_leave_the_ranks_and_are_named():
    values = _values(4)
    del values["d3"]["moco"]
    (table,) = study_tables(study_records(values))
    rk = rank_feature_sets(table)
    assert rk.datasets == ["d0", "d1", "d2"]
    assert "left out of the ranks" in rk.notes[0] and "d3" in rk.notes[0]


def test_study_table_means_over_seeds_bold_best_and_formats():
    recs = study_records(_values(3))
    (t,) = study_tables(recs)
    assert t.datasets == ["d0", "d1", "d2"] and t.features == FEATURES
    c = t.cells[("dino", "d0")]
    xs = [
        r.metrics["accuracy"]["value"]
        for r in recs
        if r.dataset == "d0" and r.features == ("dino",)
    ]
    assert c.mean == pytest.approx(np.mean(xs)) and c.n_seeds == 3
    from scipy.stats import t as student_t

    half = student_t.ppf(0.975, 2) * np.std(xs, ddof=1) / np.sqrt(3)
    assert (c.high - c.low) / 2 == pytest.approx(half)
    for d in t.datasets:
        shown = {f: round(t.cells[(f, d)].mean * 100, 1) for f in FEATURES}  # printed precision
        assert [f for f in FEATURES if t.cells[(f, d)].best] == [
            f for f in FEATURES if shown[f] == max(shown.values())
        ]
    md = render_study([t], "markdown")
    assert "| features | d0 | d1 | d2 |" in md and "| test n | 200 | 200 | 200 |" in md
    assert md.count("**") >= 2 * 3 + 2  # bold best per dataset and the caption
    tex = render_study([t], "latex")
    assert tex.count(r"\toprule") == 1 and r"\textbf{" in tex and r"$\pm$" in tex
    csv = render_study([t], "csv").splitlines()
    assert len(csv) == 1 + 12 and csv[0].startswith("method,setting,metric,features,dataset")
    single = study_tables(study_records(_values(3), seeds=(0,)))[0]
    assert "percentile bootstrap over patients" in single.caption()


def test_cd_diagram_cliques_and_files(tmp_path):
    (table,) = study_tables(study_records(_values(12), noise=0.02))
    rk = rank_feature_sets(table)
    groups = cliques(rk)
    for g in groups:  # every clique spans less than CD, and no clique holds another
        span = max(rk.mean_rank[n] for n in g) - min(rk.mean_rank[n] for n in g)
        assert span < rk.cd
    assert all(not set(a) < set(b) for a in groups for b in groups)
    svg = figure_svg(cd_figure(rk))
    assert svg.startswith("<svg") and "CD = " in svg and "dino" in svg
    for suffix in (".svg", ".pdf", ".png"):
        out = plot_cd(rk, tmp_path / f"cd{suffix}")
        assert out.stat().st_size > 1000
    assert (tmp_path / "cd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "cd.pdf").read_bytes()[:5] == b"%PDF-"


def test_an_asymmetric_exact_interval_prints_its_ends():
    from embedstore.results.study_table import StudyCell, cell_text

    exact = StudyCell(1.0, 0.794, 1.0, 1, 16, "Clopper-Pearson exact over images")
    assert cell_text(exact, 100.0) == ("100.0 (79.4–100.0)", "")
    sym = StudyCell(0.8, 0.75, 0.85, 3, 200, "t-interval over 3 seeds")
    assert cell_text(sym, 100.0) == ("80.0 ± 5.0", "")

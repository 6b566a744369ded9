"""Sweep statistics against numpy / scipy and hand-computed cases; the plot writes a PNG."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from embedstore.errors import InvalidDataError
from embedstore.results.records import ProbeResult
from embedstore.results.seeds import (
    compare_feature_sets,
    format_setting,
    paired_comparison,
    paired_stats,
    summarize,
)


def _rec(features, method, frac, seed, acc):
    return ProbeResult(
        dataset="d",
        features=tuple(features),
        method=method,
        protocol={"selection": "train-cv"},
        metrics={"accuracy": {"value": acc, "ci_low": None, "ci_high": None}},
        hyperparameters={},
        selected_on="train-cv (2 folds)",
        seed=seed,
        n_train=10,
        n_test=10,
        labels={"fraction": frac},
    )


ACC = {
    ("a",): [0.70, 0.72, 0.69, 0.75, 0.71, 0.73],
    ("b",): [0.60, 0.65, 0.62, 0.61, 0.66, 0.64],
    ("a", "b"): [0.74, 0.73, 0.72, 0.79, 0.74, 0.78],
}


def _results(order_seed=0):
    recs = [_rec(fs, "knn", 0.1, s, v) for fs, vals in ACC.items() for s, v in enumerate(vals)]
    np.random.default_rng(order_seed).shuffle(recs)  # pairing must not depend on order
    return recs


def test_summarize_mean_and_sample_std_over_seeds():
    rows = {r.features: r for r in summarize(_results())}
    for fs, vals in ACC.items():
        row = rows["+".join(fs)]
        assert row.seeds == tuple(range(6))
        assert row.values == tuple(vals)
        assert row.mean == pytest.approx(np.mean(vals))
        assert row.std == pytest.approx(np.std(vals, ddof=1))
        assert row.setting == ("fraction", 0.1)


def test_paired_stats_match_scipy_and_a_plain_bootstrap_loop():
    d = np.array([0.04, 0.01, 0.03, 0.04, 0.03, 0.05])
    mean, lo, hi, p = paired_stats(d, n_bootstrap=2000, seed=7)
    assert mean == pytest.approx(d.mean())
    assert p == pytest.approx(wilcoxon(d).pvalue)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(d), size=(2000, len(d)))
    means = [d[row].mean() for row in idx]
    assert lo == pytest.approx(np.quantile(means, 0.025))
    assert hi == pytest.approx(np.quantile(means, 0.975))
    assert lo <= mean <= hi


def test_paired_stats_edge_cases():
    assert paired_stats([0.02] * 6)[1:] == (0.02, 0.02, pytest.approx(wilcoxon([0.02] * 6).pvalue))
    assert paired_stats([0.0] * 5)[3] == 1.0
    mean, lo, hi, p = paired_stats([0.1, 0.3])
    assert mean == pytest.approx(0.2) and p is None and lo is not None
    assert paired_stats([0.1]) == (0.1, None, None, None)
    with pytest.raises(InvalidDataError):
        paired_stats([])


def test_paired_comparison_pairs_by_seed_and_uses_common_seeds_only():
    recs = [r for r in _results(1) if not (r.feature_name == "b" and r.seed == 5)]
    c = paired_comparison(recs, "a+b", "b", method="knn", setting=("fraction", 0.1))
    assert c.seeds == (0, 1, 2, 3, 4)
    expected = np.array(ACC[("a", "b")][:5]) - np.array(ACC[("b",)][:5])
    assert np.allclose(c.differences, expected)
    assert c.mean_diff == pytest.approx(expected.mean())
    assert c.wins == 5 and c.losses == 0
    assert c.p_value == pytest.approx(wilcoxon(expected).pvalue)
    assert "a+b vs b, knn at 10%" in c.describe()
    with pytest.raises(InvalidDataError, match="no 'accuracy' results"):
        paired_comparison(recs, "a", "zzz", method="knn", setting=("fraction", 0.1))


def test_compare_feature_sets_puts_the_fusion_against_the_best_single_backbone():
    (c,) = compare_feature_sets(_results(), n_bootstrap=500)
    assert (c.a, c.b) == ("a+b", "a")  # 'a' beats 'b' on mean
    d = np.array(ACC[("a", "b")]) - np.array(ACC[("a",)])
    assert c.mean_diff == pytest.approx(d.mean())
    singles_only = [r for r in _results() if len(r.features) == 1]
    (c2,) = compare_feature_sets(singles_only, n_bootstrap=500)
    assert (c2.a, c2.b) == ("a", "b")


def test_format_setting():
    assert format_setting(("fraction", 0.01)) == "1%"
    assert format_setting(("fraction", 1.0)) == "100%"
    assert format_setting(("shots", 5)) == "5-shot"


def test_plot_writes_a_png_with_one_curve_per_feature_set(tmp_path):
    pytest.importorskip("matplotlib")
    from embedstore.results.figures import plot_sweep

    recs = _results() + [
        _rec(fs, "knn", 0.5, s, v + 0.1) for fs, vals in ACC.items() for s, v in enumerate(vals)
    ]
    out = plot_sweep(recs, tmp_path / "sub" / "sweep.png", title="t")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    from PIL import Image

    rgb = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)
    pixels = {tuple(int(c) for c in p) for p in np.unique(rgb, axis=0)}
    # matplotlib's first colours: one per feature set (3), and no fourth curve
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C)):
        assert colour in pixels
    assert (0xD6, 0x27, 0x28) not in pixels
    with pytest.raises(InvalidDataError, match="nothing to plot"):
        plot_sweep([], tmp_path / "empty.png")

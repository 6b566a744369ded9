"""The sweep figure: ticks at the settings run, one shared y axis, the legend outside the data and
explaining the bands, 300 dpi PNG and real vector PDF/SVG."""

from __future__ import annotations

import pytest

from embedstore.errors import InvalidDataError
from embedstore.results.records import ProbeResult

pytest.importorskip("matplotlib")
from embedstore.results.figures import plot_sweep, sweep_figure  # noqa: E402

SETTINGS = [("fraction", 0.01), ("fraction", 0.1), ("fraction", 1.0), ("shots", 1), ("shots", 5)]


def _records():
    out = []
    for kind, value in SETTINGS:
        for method in ("knn", "logreg"):
            for features in (("a",), ("b",)):
                for seed in range(3):
                    # at 100% every seed draws the same subset (same digest): one measurement
                    digest = "all" if value == 1.0 else f"{kind}{value}-{seed}"
                    acc = 0.5 + 0.1 * seed + (0.2 if features == ("a",) else 0.0)
                    out.append(
                        ProbeResult(
                            dataset="d",
                            features=features,
                            method=method,
                            protocol={},
                            metrics={"accuracy": {"value": acc, "ci_low": None, "ci_high": None}},
                            hyperparameters={},
                            selected_on="train-cv",
                            seed=seed,
                            n_train=10,
                            n_test=40,
                            labels={kind: value, "subset_digest": digest},
                        )
                    )
    return out


def test_ticks_are_the_settings_run_and_panels_share_one_y_axis():
    fig = sweep_figure(_records(), title="d: accuracy")
    axes = fig.axes
    assert len(axes) == 4  # (fractions, shots) x (knn, logreg)
    labels = [[t.get_text() for t in ax.get_xticklabels()] for ax in axes]
    assert labels[0] == labels[1] == ["1%", "10%", "100%"]
    assert labels[2] == labels[3] == ["1", "5"]
    assert all(not ax.xaxis.get_minor_ticks() or not ax.xaxis.get_minorticklabels() for ax in axes)
    limits = {ax.get_ylim() for ax in axes}
    assert len(limits) == 1  # one y axis for every panel
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[3])


def test_legend_is_outside_the_panels_and_explains_the_band():
    fig = sweep_figure(_records())
    fig.draw_without_rendering()  # runs the constrained layout
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["a", "b"]
    assert "±1 s.d. over 3 seeds" in texts
    assert any("same labelled subset" in t for t in texts)  # the 100% cells are marked
    assert "test n = 40" in legend.get_title().get_text()
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent())


def test_file_types_follow_the_suffix(tmp_path):
    from PIL import Image

    recs = _records()
    png = plot_sweep(recs, tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dpi = Image.open(png).info["dpi"]
    assert round(dpi[0]) == 300
    pdf = plot_sweep(recs, tmp_path / "s.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and b"/Subtype /Image" not in pdf  # vector: no raster inside
    svg = plot_sweep(recs, tmp_path / "s.svg").read_text()
    assert "<svg" in svg and "<path" in svg and "<image" not in svg
    with pytest.raises(InvalidDataError, match=r"\.png, \.pdf, \.svg"):
        plot_sweep(recs, tmp_path / "s.jpg")
    assert not (tmp_path / "s.jpg").exists()

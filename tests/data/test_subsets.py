"""Labelled subsets: stratified, nested, group-aware, capped, seeded, and only from the pool."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.data.subsets import check_fractions, check_shots, labelled_subsets, setting_key
from embedstore.errors import InvalidDataError, ProtocolError


def _data(n=400, classes=(0.6, 0.3, 0.1), seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(classes), size=n, p=classes)
    pool = np.sort(rng.choice(n, size=int(n * 0.7), replace=False))  # "train" positions
    return labels, pool


def test_fractions_are_stratified_per_class():
    labels, pool = _data()
    subs = labelled_subsets(labels, pool, seed=3, fractions=[0.01, 0.1, 0.5, 1.0])
    avail = np.bincount(labels[pool], minlength=3)
    for sub in subs:
        counts = np.bincount(labels[sub.positions], minlength=3)
        expected = np.maximum(1, np.floor(sub.value * avail + 0.5)).astype(int)
        assert counts.tolist() == expected.tolist(), sub.value
        assert sub.per_class == {str(c): int(expected[c]) for c in range(3)}
        assert sub.capped_classes == ()
        assert set(sub.positions.tolist()) <= set(pool.tolist())
    assert subs[-1].n_labelled == len(pool)


def test_subsets_are_nested_for_each_seed_and_differ_between_seeds():
    labels, pool = _data()
    by_seed = {}
    for seed in (0, 1):
        subs = labelled_subsets(
            labels, pool, seed=seed, fractions=[0.02, 0.1, 0.3], shots=[1, 5, 10, 25]
        )
        fr = [set(s.positions.tolist()) for s in subs if s.kind == "fraction"]
        sh = [set(s.positions.tolist()) for s in subs if s.kind == "shots"]
        assert fr[0] < fr[1] < fr[2]
        assert sh[0] < sh[1] < sh[2] < sh[3]
        by_seed[seed] = subs
    assert not np.array_equal(by_seed[0][1].positions, by_seed[1][1].positions)
    again = labelled_subsets(labels, pool, seed=1, fractions=[0.02, 0.1, 0.3], shots=[1, 5, 10, 25])
    for a, b in zip(again, by_seed[1], strict=True):
        assert np.array_equal(a.positions, b.positions)


def test_shots_are_capped_and_the_record_says_which_class():
    labels, pool = _data(n=200, classes=(0.7, 0.25, 0.05))
    avail = np.bincount(labels[pool], minlength=3)
    k = int(avail[2]) + 3
    (sub,) = labelled_subsets(labels, pool, seed=0, shots=[k], class_names=["a", "b", "rare"])
    counts = np.bincount(labels[sub.positions], minlength=3)
    assert counts.tolist() == [k, k, int(avail[2])]
    assert sub.capped_classes == ("rare",)
    rec = sub.record()
    assert rec["shots"] == k and rec["capped_classes"] == ["rare"]
    assert rec["n_labelled"] == 2 * k + int(avail[2])
    assert setting_key(rec) == ("shots", k)


def test_group_aware_takes_whole_patients_and_nothing_outside_the_pool():
    rng = np.random.default_rng(5)
    n = 300
    group = np.array([f"p{i}" for i in rng.integers(0, 60, size=n)])
    labels = rng.integers(0, 3, size=n)
    pool = np.flatnonzero(rng.random(n) < 0.7)
    subs = labelled_subsets(labels, pool, seed=2, fractions=[0.05, 0.2], shots=[2, 4], group=group)
    for sub in subs:
        chosen = set(group[sub.positions])
        # every pool row of a chosen patient is in, and no row outside the pool
        expected = {int(i) for i in pool if group[i] in chosen}
        assert set(sub.positions.tolist()) == expected
        assert sub.n_groups == len(chosen)
        counts = np.bincount(labels[sub.positions], minlength=3)
        target = sub.value if sub.kind == "shots" else None
        if target is not None:
            assert (counts >= target).all()
    fr = [set(s.positions.tolist()) for s in subs if s.kind == "fraction"]
    assert fr[0] < fr[1]


def test_multilabel_shots_give_each_label_its_positives_and_fractions_nest():
    rng = np.random.default_rng(0)
    Y = (rng.random((300, 4)) < [0.3, 0.1, 0.05, 0.02]).astype(np.uint8)
    pool = np.arange(250)
    subs = labelled_subsets(Y, pool, seed=1, fractions=[0.05, 0.2], shots=[1, 3])
    avail = Y[pool].sum(axis=0)
    for sub in subs:
        pos = Y[sub.positions].sum(axis=0)
        need = sub.value if sub.kind == "shots" else 1
        assert (pos >= np.minimum(need, avail)).all()
        if sub.kind == "fraction":
            assert sub.n_labelled >= round(sub.value * len(pool))
    assert set(subs[0].positions) < set(subs[1].positions)
    assert set(subs[2].positions) < set(subs[3].positions)


def test_bad_settings_raise_clear_errors():
    labels, pool = _data()
    with pytest.raises(InvalidDataError, match=r"\(0, 1\]"):
        check_fractions([0.1, 1.5])
    with pytest.raises(InvalidDataError, match=r"\(0, 1\]"):
        check_fractions(["abc"])
    with pytest.raises(InvalidDataError, match="repeated"):
        check_fractions([0.1, 0.1])
    with pytest.raises(InvalidDataError, match="positive whole"):
        check_shots([0])
    with pytest.raises(InvalidDataError, match="positive whole"):
        check_shots([2.5])
    with pytest.raises(InvalidDataError, match="fractions or shots"):
        labelled_subsets(labels, pool, seed=0)
    with pytest.raises(ProtocolError, match="empty"):
        labelled_subsets(labels, pool[:0], seed=0, fractions=[0.1])


def test_a_fraction_label_says_the_share_really_drawn_on_tiny_sets():
    """--fractions 0.1 on 8 training rows of 2 classes: every class gets at least one row, so 2
    rows are drawn, 25% of train; the label says so instead of '10%' (issue 23, item 3)."""
    from embedstore.data.subsets import LabelSetting

    labels = np.array([0, 1] * 4)
    (sub,) = labelled_subsets(labels, np.arange(8), seed=0, fractions=[0.1])
    assert sub.n_labelled == 2 and sub.n_pool == 8 and sub.share == 0.25
    assert sub.record()["share"] == 0.25 and sub.record()["n_pool"] == 8
    assert sub.setting.display(sub.share) == "25% (10% asked)"
    assert sub.setting.display() == "10%"
    big = np.arange(1000) % 2  # 10% of 1,000 is 100 rows: the asked fraction is the share
    (sub,) = labelled_subsets(big, np.arange(1000), seed=0, fractions=[0.1])
    assert sub.share == 0.1 and sub.setting.display(sub.share) == "10%"
    assert LabelSetting("shots", 5).display(0.3) == "5-shot"

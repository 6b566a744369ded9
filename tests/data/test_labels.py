"""Integer labels are class identifiers: the distinct values, ascending, become the classes, named
by value, in every source (CSV, tar shards, .npz, arrays); labels already 0..k-1 keep today's
classes. NaN, infinities, fractions, empty labels and mixed columns are one error naming rows."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedstore.data import ArraySource, CsvSource, NpzSource, TarShardSource, open_source
from embedstore.errors import SourceError
from tests.data.conftest import save_png


def _csv(tmp_path: Path, labels: list[object], **kwargs) -> CsvSource:
    """A manifest of len(labels) real PNGs labelled as given (written as text)."""
    for i in range(len(labels)):
        save_png(tmp_path / "img" / f"{i}.png", 10 * i % 256)
    rows = "".join(f"img/{i}.png,{v}\n" for i, v in enumerate(labels))
    (tmp_path / "m.csv").write_text("path,label\n" + rows)
    return CsvSource(tmp_path / "m.csv", **kwargs)


def _reference(values: list[int]) -> tuple[list[int], list[str]]:
    """Hand-written rule: class i is the i-th smallest distinct value, named by it."""
    distinct = sorted(set(values))
    return [distinct.index(v) for v in values], [str(v) for v in distinct]


def test_one_large_label_makes_one_class_named_by_value(tmp_path):
    src = _csv(tmp_path, [0, 1, 0, 1, 10000000, 1, 0, 10000000])
    assert src.class_names == ("0", "1", "10000000") and src.task == "multiclass"
    assert src.labels.tolist() == [0, 1, 0, 1, 2, 1, 0, 2]
    source = src.dataset_fields()["source"]
    assert "labels: the 3 distinct integer labels, ascending, are classes 0..2" in source


def test_sparse_negative_and_float_spelled_labels_match_the_hand_rule(tmp_path):
    rng = np.random.default_rng(5)
    values = rng.choice([-7, -1, 3, 9, 10, 250, 4096], size=30).tolist()
    src = _csv(tmp_path, values)
    labels, names = _reference(values)
    assert src.labels.tolist() == labels and list(src.class_names) == names
    assert names.index("9") < names.index("10")  # numeric order, not text order
    spelled = _csv(tmp_path / "f", ["1.0", "02", "1", " 2 ", "3e0", "3"])
    assert spelled.class_names == ("1", "2", "3") and spelled.labels.tolist() == [0, 1, 0, 1, 2, 2]


def test_labels_already_0_to_k_minus_1_keep_todays_classes(tmp_path):
    values = [2, 0, 1, 3, 1, 0, 2, 3]
    src = _csv(tmp_path, values)
    assert src.labels.tolist() == values and src.class_names == ("0", "1", "2", "3")
    assert src.label_note == "" and "labels:" not in src.dataset_fields()["source"]
    named = _csv(tmp_path / "n", values, class_names=["a", "b", "c", "d"], task="ordinal")
    assert named.labels.tolist() == values and named.class_names == ("a", "b", "c", "d")
    assert named.label_note == "" and named.task == "ordinal"


def test_class_names_name_distinct_values_or_indices(tmp_path):
    values = [1, 3, 5, 3, 1, 5]
    src = _csv(tmp_path, values, class_names=["mild", "moderate", "severe"], task="ordinal")
    assert src.class_names == ("mild", "moderate", "severe") and src.task == "ordinal"
    assert src.labels.tolist() == [0, 1, 2, 1, 0, 2]  # ascending grades keep their order
    assert src.label_note == "integer label -> class name: 1 -> mild, 3 -> moderate, 5 -> severe"
    per_index = _csv(tmp_path / "i", values, class_names=list("abcdef"))
    assert (
        per_index.class_names == ("b", "d", "f")
        and per_index.labels.tolist() == src.labels.tolist()
    )
    assert "dropped: 0 (a), 2 (c), 4 (e)" in per_index.label_note
    with pytest.raises(SourceError) as err:
        _csv(tmp_path / "x", values, class_names=["a", "b"])
    assert "hold 3 distinct integer value(s) (1, 3, 5) but 2 class names" in str(err.value)
    assert "one name per distinct value, lowest value first, or one per index 0..5" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("bad", "line", "said"),
    [
        ("nan", "line 4", "got a missing value (NaN); fill in the class, or remove the row"),
        ("NaN", "line 4", "got a missing value (NaN)"),
        ("inf", "line 4", "got an infinite number or one beyond 64-bit integers"),
        ("-inf", "line 4", "got an infinite number"),
        ("1.5", "line 4", "got a number that is not whole; fix the label, or remove the row"),
        ("1e30", "line 4", "beyond 64-bit integers"),
        ("abc", "line 4", "does not match the other labels, which are integer class ids"),
        ("", "line 4", "empty label in column 'label' on line 4; give every image a label"),
    ],
)
def test_bad_label_is_one_error_naming_line_value_and_fix(tmp_path, bad, line, said):
    with pytest.raises(SourceError) as err:
        _csv(tmp_path, [0, 1, bad, 1, 0, 1])
    text = str(err.value)
    assert "\n" not in text and said in text and f"on {line}" in text
    if bad:
        assert f"label '{bad}' in column 'label' on line 4" in text


def test_names_column_with_a_number_or_nan_is_refused_unless_named(tmp_path):
    with pytest.raises(
        SourceError, match=r"label 'nan' in column 'label' on line 3 is not a class"
    ):
        _csv(tmp_path, ["benign", "nan", "malignant", "benign"])
    with pytest.raises(SourceError, match="which are class names \\(e.g. 'benign', 'malignant'\\)"):
        _csv(tmp_path / "m", ["benign", "7", "malignant", "benign", "malignant"])
    named = _csv(
        tmp_path / "n",
        ["benign", "7", "malignant", "benign"],
        class_names=["benign", "malignant", "7"],
    )
    assert named.class_names == ("benign", "malignant", "7") and named.labels.tolist() == [
        0,
        2,
        1,
        0,
    ]
    grades = _csv(
        tmp_path / "g",
        ["none", "mild", "none", "mild"],
        class_names=["none", "mild"],
        task="ordinal",
    )
    assert grades.class_names == ("none", "mild")  # 'none' is a grade, not a missing value


def test_multilabel_columns_are_unchanged_and_refuse_nan(tmp_path):
    for i in range(4):
        save_png(tmp_path / f"{i}.png", i)
    (tmp_path / "m.csv").write_text("path,a,b\n0.png,1,0\n1.png,0,1.0\n2.png,1,1\n3.png,0,0\n")
    src = CsvSource(tmp_path / "m.csv", label_columns=["a", "b"])
    assert src.task == "multilabel" and src.labels.tolist() == [[1, 0], [0, 1], [1, 1], [0, 0]]
    (tmp_path / "n.csv").write_text("path,a,b\n0.png,1,0\n1.png,0,nan\n2.png,1,1\n3.png,0,0\n")
    with pytest.raises(SourceError, match="column 'b' must hold 0 or 1, got 'nan' on line 3"):
        CsvSource(tmp_path / "n.csv", label_columns=["a", "b"])


def _shard(path: Path, labels: list[str], kind: str = "cls") -> Path:
    """One tar shard: NNN.png (a real PNG) and NNN.cls or NNN.json holding each label."""
    png = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(png, format="PNG")
    with tarfile.open(path, "w") as tar:
        for i, label in enumerate(labels):
            for name, data in (
                (f"{i:03d}.png", png.getvalue()),
                (f"{i:03d}.{kind}", label.encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_tar_shard_labels_follow_the_same_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDSTORE_CACHE", str(tmp_path / "cache"))
    src = TarShardSource(_shard(tmp_path / "a.tar", ["0", "1", "10000000", "1"]))
    assert src.class_names == ("0", "1", "10000000") and src.labels.tolist() == [0, 1, 2, 1]
    old = TarShardSource(_shard(tmp_path / "b.tar", ["2", "0", "1", "0"]))
    assert old.class_names == ("0", "1", "2") and old.labels.tolist() == [2, 0, 1, 0]
    nan = _shard(
        tmp_path / "c.tar", [json.dumps({"label": v}) for v in (0, 1, float("nan"))], "json"
    )
    with pytest.raises(SourceError, match=r"label 'nan' on sample '002.png' is not a class"):
        TarShardSource(nan)
    null = _shard(tmp_path / "d.tar", [json.dumps({"label": v}) for v in (0, None, 1)], "json")
    with pytest.raises(SourceError, match=r"empty label on sample '001.png'"):
        TarShardSource(null)


def test_npz_and_array_labels_follow_the_same_rule(tmp_path):
    images = np.zeros((6, 4, 4), np.uint8)
    np.savez(
        tmp_path / "a.npz",
        train_images=images,
        train_labels=np.array([[0], [5], [5], [0], [9], [9]]),
    )
    src = NpzSource(tmp_path / "a.npz")
    assert src.class_names == ("0", "5", "9") and src.labels.tolist() == [0, 1, 1, 0, 2, 2]
    assert "distinct integer labels" in src.dataset_fields()["source"]
    np.savez(
        tmp_path / "b.npz", train_images=images, train_labels=np.array([0.0, 1, np.nan, 1, 0, 1])
    )
    with pytest.raises(
        SourceError, match=r"label\(s\) nan on row 2 \(id 'train/2'\) are not whole"
    ):
        NpzSource(tmp_path / "b.npz")
    assert ArraySource(images, np.array([0.0, 1, 2, 1, 0, 2])).class_names == ("0", "1", "2")
    with pytest.raises(
        SourceError, match=r"label\(s\) 0.5, inf on rows 1 \(id '1'\), 3 \(id '3'\)"
    ):
        ArraySource(images, np.array([0, 0.5, 1, np.inf, 0, 1]))
    text = ArraySource(images, np.array(["b", "a", "b", "a", "b", "a"]))
    assert text.class_names == ("a", "b") and text.labels.tolist() == [1, 0, 1, 0, 1, 0]


def test_open_source_passes_class_names_through(tmp_path):
    for i in range(4):
        save_png(tmp_path / f"{i}.png", i)
    (tmp_path / "m.csv").write_text("path,label\n0.png,10\n1.png,20\n2.png,10\n3.png,20\n")
    src = open_source(tmp_path / "m.csv", class_names="low,high", task="binary")
    assert src.class_names == ("low", "high") and src.labels.tolist() == [0, 1, 0, 1]
    assert src.label_note == "integer label -> class name: 10 -> low, 20 -> high"


def test_tar_multilabel_lists_sort_integer_ids_and_refuse_nan(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDSTORE_CACHE", str(tmp_path / "cache"))
    present = [[10, 9], [9], [], [10.0]]
    src = TarShardSource(
        _shard(tmp_path / "a.tar", [json.dumps({"labels": x}) for x in present], "json")
    )
    assert src.task == "multilabel" and src.class_names == ("9", "10")
    assert src.labels.tolist() == [[1, 1], [1, 0], [0, 0], [0, 1]]
    vectors = [[1, 0.0], [0, 1], [1.0, 1]]
    src = TarShardSource(
        _shard(tmp_path / "b.tar", [json.dumps({"labels": x}) for x in vectors], "json")
    )
    assert src.class_names == ("label_0", "label_1") and src.labels.tolist() == [
        [1, 0],
        [0, 1],
        [1, 1],
    ]
    bad = [[1, 0], [0, float("nan")], [1, 1]]
    with pytest.raises(SourceError, match=r"'labels' of sample '001.png' hold \[0, nan\]"):
        TarShardSource(_shard(tmp_path / "c.tar", [json.dumps({"labels": x}) for x in bad], "json"))

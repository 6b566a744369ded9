"""Image sources on tiny real files made in fixtures: folder, CSV, npz, arrays, DICOM, demo."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from embedstore.backbones import Preprocess
from embedstore.data import (
    ArraySource,
    CsvSource,
    ImageFolderSource,
    ImageTransform,
    NpzSource,
    demo_source,
    open_source,
    read_dicom,
    read_image,
)
from embedstore.errors import BadImageError, SourceError


def _png(path, value, size=(20, 16), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    for c, name in enumerate(["cat", "ant", "bee"]):
        for i in range(10):
            ext = "jpg" if i % 3 == 0 else "png"
            _png(root / name / f"{i:02d}.{ext}", 20 * c + i, mode="L" if i % 2 else "RGB")
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / "ant" / ".hidden.png").write_bytes(b"")
    return root


def test_folder_source_labels_ids_and_stratified_splits(folder):
    src = ImageFolderSource(folder)
    assert src.class_names == ("ant", "bee", "cat")
    assert src.task == "multiclass" and len(src) == 30
    assert src.ids[0] == "ant/00.jpg" and "ant/notes.txt" not in src.ids
    assert (src.labels[src.ids == "cat/05.png"] == 2).all()
    for c in range(3):  # 10 per class -> exactly 7 / 1 / 2
        assert np.bincount(src.split[src.labels == c], minlength=3).tolist() == [7, 1, 2]
    img = src.load(int(np.flatnonzero(src.ids == "bee/01.png")[0]))
    assert img.mode == "L" and np.asarray(img)[0, 0] == 41  # bee was written with c=2
    assert src.split_origin.startswith("stratified")


def test_folder_with_split_subfolders_keeps_source_splits(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for c in ("neg", "pos"):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.png", i)
    src = open_source(tmp_path)
    assert src.task == "binary" and src.split_origin == "source"
    assert np.bincount(src.split).tolist() == [8, 4, 6]
    assert set(src.ids[src.split == 1]) == {
        f"val/{c}/{i}.png" for c in ("neg", "pos") for i in (0, 1)
    }


def test_folder_errors_say_what_was_expected(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    _png(tmp_path / "flat" / "a.png", 1)
    with pytest.raises(SourceError, match="one subfolder per class"):
        ImageFolderSource(tmp_path / "flat")
    (tmp_path / "cls" / "a").mkdir(parents=True)
    (tmp_path / "cls" / "b").mkdir()
    _png(tmp_path / "cls" / "a" / "1.png", 1)
    (tmp_path / "cls" / "b" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(SourceError, match=r"class folder\(s\) \['b'\] hold no image files"):
        ImageFolderSource(tmp_path / "cls")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(SourceError, match="expected an image folder, a .csv"):
        open_source(tmp_path / "x.parquet")


def _write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")


def test_csv_single_label_with_split_and_group(tmp_path):
    rows = []
    for i in range(12):
        _png(tmp_path / "images" / f"{i}.png", i)
        rows.append((f"images/{i}.png", "yes" if i % 2 else "no", f"p{i // 2}", "train"))
    rows[10] = rows[10][:3] + ("test",)
    rows[11] = rows[11][:3] + ("test",)
    csv = tmp_path / "m.csv"
    _write_csv(csv, ["file", "diagnosis", "patient", "fold"], rows)
    src = CsvSource(
        csv,
        path_column="file",
        label_columns="diagnosis",
        split_column="fold",
        group_column="patient",
    )
    assert src.class_names == ("no", "yes") and src.task == "binary"
    assert src.labels.tolist() == [i % 2 for i in range(12)]
    assert src.split.tolist() == [0] * 10 + [2, 2] and src.split_origin == "source"
    assert src.group.tolist()[:4] == ["p0", "p0", "p1", "p1"]
    assert np.asarray(src.load(3))[0, 0, 0] == 3  # path resolved relative to the CSV


def test_csv_split_leaking_a_patient_is_refused(tmp_path):
    _write_csv(
        tmp_path / "m.csv",
        ["path", "label", "g", "s"],
        [("a.png", 0, "p1", "train"), ("b.png", 1, "p1", "test")],
    )
    with pytest.raises(SourceError, match=r"\['p1'\] appear in more than one split"):
        CsvSource(tmp_path / "m.csv", split_column="s", group_column="g", allow_missing=True)


def test_csv_made_splits_are_group_disjoint(tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        (f"{i}.png", int(rng.integers(0, 3)), f"patient{int(rng.integers(0, 25))}")
        for i in range(200)
    ]
    _write_csv(tmp_path / "m.csv", ["path", "label", "pid"], rows)
    src = CsvSource(
        tmp_path / "m.csv", group_column="pid", class_names=["a", "b", "c"], allow_missing=True
    )
    for g in np.unique(src.group):
        assert len(np.unique(src.split[src.group == g])) == 1
    assert set(np.unique(src.split).tolist()) == {0, 1, 2}


def test_csv_multilabel_columns(tmp_path):
    rows = [(f"{i}.png", i % 2, (i // 2) % 2, 1) for i in range(8)]
    _write_csv(tmp_path / "m.csv", ["path", "edema", "nodule", "other"], rows)
    src = CsvSource(
        tmp_path / "m.csv", label_columns=["edema", "nodule", "other"], allow_missing=True
    )
    assert src.task == "multilabel" and src.class_names == ("edema", "nodule", "other")
    assert src.labels.dtype == np.uint8 and src.labels.shape == (8, 3)
    assert src.labels[:, 1].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]


def test_csv_missing_column_names_the_columns_and_the_option(tmp_path):
    _write_csv(tmp_path / "m.csv", ["path", "label"], [("a.png", 0)])
    with pytest.raises(
        SourceError, match=r"no column 'dx' \(columns: path, label\).*--label-column"
    ):
        open_source(tmp_path / "m.csv", label_columns=["dx"])
    with pytest.raises(SourceError, match="--split-column"):
        open_source(tmp_path / "m.csv", split_column="fold")


def test_npz_grey_binary_and_rgb_multilabel(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "grey.npz",
        train_images=rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
        train_labels=np.array([[0], [1], [0], [1], [0], [1]]),
        val_images=rng.integers(0, 255, (2, 28, 28), dtype=np.uint8),
        val_labels=np.array([[0], [1]]),
        test_images=rng.integers(0, 255, (3, 28, 28), dtype=np.uint8),
        test_labels=np.array([[1], [0], [1]]),
    )
    src = open_source(tmp_path / "grey.npz")
    assert src.task == "binary" and len(src) == 11
    assert src.ids.tolist()[5:9] == ["train/5", "val/0", "val/1", "test/0"]
    assert src.split.tolist() == [0] * 6 + [1] * 2 + [2] * 3
    assert src.labels.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1]
    x = ImageTransform(Preprocess(resize=32, crop=32, mean=None, std=None))(src.load(7))
    assert x.shape == (3, 32, 32) and bool((x[0] == x[2]).all())  # grey -> three equal channels

    y = rng.integers(0, 2, (5, 4))
    np.savez(
        tmp_path / "rgb.npz",
        train_images=rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8),
        train_labels=y,
    )
    src = NpzSource(tmp_path / "rgb.npz")
    assert src.task == "multilabel" and np.array_equal(src.labels, y)
    assert src.load(2).shape == (16, 16, 3)
    rgb = src.load_rgb(2)  # the one decoded form every backbone's transform starts from
    assert rgb.mode == "RGB" and np.array_equal(np.asarray(rgb), src.images[2])


def test_npz_without_keys_lists_expected_and_received(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4)), labels=np.zeros(2))
    with pytest.raises(SourceError, match=r"keys \['images', 'labels'\]; expected MedMNIST keys"):
        open_source(tmp_path / "bad.npz")
    np.savez(
        tmp_path / "half.npz",
        train_images=np.zeros((2, 4, 4)),
        train_labels=np.zeros(2),
        val_images=np.zeros((1, 4, 4)),
    )
    with pytest.raises(SourceError, match="has val_images but no val_labels"):
        open_source(tmp_path / "half.npz")


def test_array_source_validates_shapes():
    with pytest.raises(SourceError, match=r"\(n, H, W\) grey or \(n, H, W, 3\)"):
        ArraySource(np.zeros((3, 4)), np.zeros(3))
    src = ArraySource(np.zeros((20, 8, 8), np.uint8), np.arange(20) % 4, seed=3)
    assert src.task == "multiclass" and src.class_names == ("0", "1", "2", "3")


def test_unreadable_files_raise_bad_image_naming_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadImageError, match=r"empty\.png' is empty"):
        read_image(tmp_path / "empty.png")
    _png(tmp_path / "full.jpg", 100, size=(32, 32))
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match=r"cannot read image '.*cut\.jpg'"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "junk.png").write_bytes(b"this is not a png at all")
    with pytest.raises(BadImageError, match="junk.png"):
        read_image(tmp_path / "junk.png")


def _dicom(path, pixels, *, slope=1.0, intercept=0.0, center=None, width=None, mono="MONOCHROME2"):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, mono
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if center is not None:
        ds.WindowCenter, ds.WindowWidth = center, width
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_rescale_window_and_monochrome1(tmp_path):
    raw = np.array([[0, 1000, 2000], [3000, 4000, 65535]], dtype=np.uint16)
    _dicom(tmp_path / "a.dcm", raw, slope=2.0, intercept=-1000.0, center=3000.0, width=4000.0)
    hu = raw.astype(np.float64) * 2.0 - 1000.0  # window [1000, 5000] -> [0, 255]
    expected = np.round(np.clip((hu - 1000.0) / 4000.0, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(read_dicom(tmp_path / "a.dcm"), expected)
    _dicom(tmp_path / "b.dcm", raw[:, :2], mono="MONOCHROME1")  # no window: min..max, inverted
    expected = 255 - np.round(raw[:, :2] / 4000.0 * 255).astype(np.uint8)
    assert np.array_equal(read_dicom(tmp_path / "b.dcm"), expected)
    (tmp_path / "cls" / "x").mkdir(parents=True)
    (tmp_path / "cls" / "y").mkdir()
    _dicom(tmp_path / "cls" / "x" / "1.dcm", raw)
    _dicom(tmp_path / "cls" / "y" / "2.dcm", raw)
    src = ImageFolderSource(tmp_path / "cls")
    assert src.load(1).dtype == np.uint8 and src.ids.tolist() == ["x/1.dcm", "y/2.dcm"]


def test_dicom_without_pydicom_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if the extra were not installed
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "1.dcm").write_bytes(b"\0" * 10)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "2.dcm").write_bytes(b"\0" * 10)
    with pytest.raises(SourceError, match=r"needs pydicom.*embedstore\[dicom\]"):
        ImageFolderSource(tmp_path)


def test_demo_source_reads_real_br35h_files():
    src = demo_source()
    assert len(src) == 3000 and src.class_names == ("no", "yes") and src.task == "binary"
    assert np.bincount(src.labels).tolist() == [1500, 1500]
    assert np.bincount(src.split).tolist() == [2100, 300, 600]
    transform = ImageTransform(Preprocess())
    for row in (0, 1499, 1500, 2999):
        assert src.ids[row].startswith(("no/", "yes/"))
        x = transform(src.load(row))
        assert x.shape == (3, 224, 224) and bool(x.isfinite().all()) and float(x.std()) > 0.05

"""--task and --class-names on `embedstore extract` and open_source: stored as given, validated
against the labels with one clear line."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.data import ImageFolderSource, open_source
from embedstore.errors import SourceError
from tests.data.conftest import TINY, save_png

runner = CliRunner()


def _extract(tmp_path, source, *extra):
    args = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--source", str(source)]
    args += ["--backbone", TINY, "--workers", "0", "--device", "cpu", *extra]
    return runner.invoke(app, args)


def _error(result) -> str:
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def grades(tmp_path):
    """Diabetic-retinopathy-like grade folders, whose alphabetical order is not the grade order."""
    root = tmp_path / "dr"
    for g, name in enumerate(["none", "mild", "moderate", "severe"]):
        for i in range(3):
            save_png(root / name / f"{i}.png", 40 * g + i)
    return root


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "retina.npz"
    np.savez(
        path,
        train_images=rng.integers(0, 255, (10, 12, 12, 3), dtype=np.uint8),
        train_labels=(np.arange(10) % 5)[:, None],
        test_images=rng.integers(0, 255, (5, 12, 12, 3), dtype=np.uint8),
        test_labels=np.arange(5)[:, None],
    )
    return path


def test_ordinal_folder_needs_the_grade_order_and_stores_it(tmp_path, grades):
    line = _error(_extract(tmp_path, grades, "--task", "ordinal"))
    assert "task 'ordinal' needs the order of the grades" in line and "--class-names" in line
    result = _extract(
        tmp_path, grades, "--task", "ordinal", "--class-names", "none,mild,moderate,severe"
    )
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "s.zarr")
    info = store.dataset_info("ds")
    assert info.task == "ordinal" and info.class_names == ("none", "mild", "moderate", "severe")
    ids, labels = store.ids("ds"), store.labels("ds")
    assert labels[ids == "severe/0.png"].tolist() == [3] and labels[ids == "mild/2.png"] == [1]
    assert ids.tolist() == ImageFolderSource(grades).ids.tolist()  # rows keep the folder order


def test_class_names_must_name_exactly_the_folders(tmp_path, grades):
    line = _error(_extract(tmp_path, grades, "--class-names", "none,mild,moderate,sever"))
    assert "must name exactly the classes found" in line
    assert "['severe'] found in the data are not among them" in line
    assert "['sever'] have no images" in line
    assert "given more than once" in _error(_extract(tmp_path, grades, "--class-names", "a,a"))


def test_npz_class_names_and_ordinal(tmp_path, npz):
    names = "no DR,mild,moderate,severe,proliferative"
    result = _extract(tmp_path, npz, "--task", "ordinal", "--class-names", names)
    assert result.exit_code == 0, result.output
    info = open_store(tmp_path / "s.zarr").dataset_info("ds")
    assert info.task == "ordinal" and info.class_names == tuple(names.split(","))
    few = _error(_extract(tmp_path, npz, "--class-names", "a,b,c"))
    assert "hold 5 distinct integer value(s) (0, 1, 2, 3, 4) but 3 class names were given" in few
    assert "give one name per distinct value, lowest value first" in few
    many = _error(_extract(tmp_path, npz, "--class-names", "a,b,c,d,e,f"))
    assert "but 6 class names were given (a, b, c, d, e, f)" in many


def test_task_must_fit_the_labels(tmp_path, grades, npz):
    assert "task must be one of binary, multiclass, multilabel, ordinal" in _error(
        _extract(tmp_path, grades, "--task", "regression")
    )
    assert "task 'binary' needs exactly 2 classes, found 4" in _error(
        _extract(tmp_path, grades, "--task", "binary")
    )
    assert "task 'multilabel' needs several 0/1 labels per image" in _error(
        _extract(tmp_path, grades, "--task", "multilabel")
    )
    assert "must be 0 or 1, got values [0, 1, 2, 3, 4]; class indices need" in _error(
        _extract(tmp_path, npz, "--task", "multilabel")
    )


def test_csv_class_names_for_indices_and_multilabel_columns(tmp_path):
    for i in range(6):
        save_png(tmp_path / f"{i}.png", i)
    (tmp_path / "idx.csv").write_text(
        "path,label,a,b\n" + "".join(f"{i}.png,{i % 3},{i % 2},{i // 3}\n" for i in range(6))
    )
    src = open_source(tmp_path / "idx.csv", class_names="low, mid ,high", task="ordinal")
    assert src.class_names == ("low", "mid", "high") and src.task == "ordinal"
    assert src.dataset_fields()["class_names"] == ["low", "mid", "high"]
    with pytest.raises(SourceError, match=r"3 distinct integer value\(s\) \(0, 1, 2\) but 2 class"):
        open_source(tmp_path / "idx.csv", class_names="low,high")
    src = open_source(tmp_path / "idx.csv", label_columns=["a", "b"], class_names="edema,nodule")
    assert src.task == "multilabel" and src.class_names == ("edema", "nodule")
    with pytest.raises(SourceError, match="task 'ordinal' needs one class per image"):
        open_source(tmp_path / "idx.csv", label_columns=["a", "b"], task="ordinal")


def test_numeric_grade_folders_are_ordinal_without_names(tmp_path):
    for g in range(3):
        save_png(tmp_path / str(g) / "x.png", g)
        save_png(tmp_path / str(g) / "y.png", g + 50)
    src = open_source(tmp_path, task="ordinal")
    assert src.task == "ordinal" and src.class_names == ("0", "1", "2")


def test_python_extract_takes_task_class_names_and_skip_bad(tmp_path, npz):
    from embedstore.extraction import extract

    names = ["no DR", "mild", "moderate", "severe", "proliferative"]
    extract(tmp_path / "a.zarr", dataset="ds", source=str(npz), backbones=[TINY], workers=0,
            device="cpu", task="ordinal", class_names=names)  # fmt: skip
    info = open_store(tmp_path / "a.zarr").dataset_info("ds")
    assert info.task == "ordinal" and info.class_names == tuple(names)
    for i in range(4):
        save_png(tmp_path / "imgs" / f"{i}.png", i)
    (tmp_path / "m.csv").write_text(
        "path,label\n" + "".join(f"imgs/{i}.png,{i % 2}\n" for i in range(5))
    )  # imgs/4.png is not there
    with pytest.raises(SourceError, match=r"1 of 5 listed image file\(s\) do not exist"):
        extract(tmp_path / "b.zarr", dataset="ds", source=str(tmp_path / "m.csv"),
                backbones=[TINY], workers=0, device="cpu")  # fmt: skip
    extract(tmp_path / "b.zarr", dataset="ds", source=str(tmp_path / "m.csv"), backbones=[TINY],
            workers=0, device="cpu", skip_bad=True)  # fmt: skip
    missing = open_store(tmp_path / "b.zarr").missing("ds", TINY)
    assert [m["id"] for m in missing] == ["imgs/4.png"]


def test_open_source_is_public_api(tmp_path, grades):
    import embedstore as es

    src = es.open_source(grades, task="ordinal", class_names="none,mild,moderate,severe")
    assert src.task == "ordinal" and src.load_rgb(0).mode == "RGB"

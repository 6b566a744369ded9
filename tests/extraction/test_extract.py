"""`extract` end to end into real zarr stores with tiny registered backbones, and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.backbones import BackboneSpec, Preprocess, load_model, register, unregister
from embedstore.cli.main import app
from embedstore.data import ImageFolderSource, ImageTransform
from embedstore.errors import (
    BadImageError,
    ConflictError,
    InvalidDataError,
    UnknownBackboneError,
)
from embedstore.extraction import ExtractProgress, extract
from tests.extraction.helpers import TINY, TINY2, assert_stored_close, tiny_conv

NAN = "nanconv.test"


class _NaNNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * float("nan")


@pytest.fixture(scope="module", autouse=True)
def tiny_backbones():
    pre = Preprocess(resize=36, crop=32)
    specs = [
        BackboneSpec(TINY, "tinyconv", 16, lambda: tiny_conv(16), None, dict, pre),
        BackboneSpec(TINY2, "tinyconv", 24, lambda: tiny_conv(24), None, dict, pre),
        BackboneSpec(NAN, "nanconv", 3, _NaNNet, None, dict, pre),
    ]
    for spec in specs:
        register(spec)
    yield
    for spec in specs:
        unregister(spec.name)


def _write_images(root: Path, per_class: int = 14) -> None:
    rng = np.random.default_rng(7)
    for c in ("benign", "malignant", "normal"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            h, w = int(rng.integers(16, 33)), int(rng.integers(16, 33))
            if i % 3 == 0:
                Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").save(
                    root / c / f"{i:02d}.png"
                )
            else:
                arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / c / f"{i:02d}.{'jpg' if i % 2 else 'png'}")


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "images"
    _write_images(root)
    return root


def _run(store, images, **kw):
    kw.setdefault("backbones", [TINY])
    kw.setdefault("workers", 0)
    kw.setdefault("device", "cpu")
    kw.setdefault("batch_size", 4)
    return extract(store, dataset="ds", source=images, **kw)


def _chunk_bytes(store: Path, backbone: str) -> dict[str, bytes]:
    base = store / "ds" / backbone / "embeddings" / "c"
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def test_extract_two_backbones_matches_a_direct_forward_pass(tmp_path, images):
    summaries = _run(tmp_path / "s.zarr", images, backbones=[TINY, TINY2])
    assert [(s.backbone, s.status, s.rows, s.dim) for s in summaries] == [
        (TINY, "written", 42, 16),
        (TINY2, "written", 42, 24),
    ]
    store = open_store(tmp_path / "s.zarr")
    src = ImageFolderSource(images)
    assert np.array_equal(store.ids("ds"), src.ids)
    assert np.array_equal(store.labels("ds"), src.labels)
    assert np.array_equal(store.split("ds"), src.split)
    assert store.dataset_info("ds").class_names == ("benign", "malignant", "normal")
    for name, dim in ((TINY, 16), (TINY2, 24)):
        loaded = load_model(name)
        transform = ImageTransform(loaded.spec.preprocess)
        with torch.no_grad():
            batch = torch.stack([transform(src.load(i)) for i in range(len(src))])
            reference = loaded.model(batch).numpy()
        stored = store.embeddings("ds", name)
        assert stored.shape == (42, dim)
        info = store.array_info("ds", name)
        assert_stored_close(stored, reference, info.dtype)
        assert info.complete and info.dtype == "float16"
        prov = info.provenance
        assert prov["backbone"]["name"] == name and prov["backbone"]["preprocess"]["crop"] == 32
        assert prov["n_images"] == 42 and prov["device"] == "cpu" and prov["dtype"] == "float16"
        assert {"torch", "torchvision", "embedstore"} <= set(prov["software"])
        assert prov["weights_sha256"] is None and prov["channels_last"] is True


def test_worker_processes_give_the_same_bytes(tmp_path, images):
    _run(tmp_path / "a.zarr", images, workers=0, chunk_rows=8)
    _run(tmp_path / "b.zarr", images, workers=2, chunk_rows=8)
    assert _chunk_bytes(tmp_path / "a.zarr", TINY) == _chunk_bytes(tmp_path / "b.zarr", TINY)


def test_interrupted_run_resumes_bit_identical(tmp_path, images):
    _run(tmp_path / "clean.zarr", images, chunk_rows=8, dtype="float32")
    seen: list[ExtractProgress] = []

    def stop_after_five_batches(p: ExtractProgress) -> None:
        seen.append(p)
        if p.done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(
            tmp_path / "s.zarr",
            images,
            chunk_rows=8,
            dtype="float32",
            progress=stop_after_five_batches,
        )
    info = open_store(tmp_path / "s.zarr").array_info("ds", TINY)
    assert not info.complete and info.rows_written == 16  # whole chunks only
    assert seen[0].done == 0 and seen[-1].done == 20
    (summary,) = _run(tmp_path / "s.zarr", images, chunk_rows=8, dtype="float32")
    assert summary.status == "resumed" and summary.start_row == 16 and summary.rows_extracted == 26
    assert _chunk_bytes(tmp_path / "s.zarr", TINY) == _chunk_bytes(tmp_path / "clean.zarr", TINY)
    a = open_store(tmp_path / "s.zarr").embeddings("ds", TINY)
    assert np.array_equal(a, open_store(tmp_path / "clean.zarr").embeddings("ds", TINY))


def test_bad_image_stops_then_resumes_after_the_fix(tmp_path, images):
    _run(tmp_path / "clean.zarr", images, chunk_rows=8)
    victim = images / "malignant" / "07.jpg"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 3])  # truncated JPEG, row 21
    with pytest.raises(BadImageError, match=r"malignant/07\.jpg.*--skip-bad"):
        _run(tmp_path / "s.zarr", images, chunk_rows=8)
    info = open_store(tmp_path / "s.zarr").array_info("ds", TINY)
    assert not info.complete and info.rows_written == 16
    victim.write_bytes(good)
    (summary,) = _run(tmp_path / "s.zarr", images, chunk_rows=8)
    assert summary.status == "resumed" and summary.start_row == 16
    assert _chunk_bytes(tmp_path / "s.zarr", TINY) == _chunk_bytes(tmp_path / "clean.zarr", TINY)


def test_skip_bad_writes_zero_rows_recorded_as_missing(tmp_path, images):
    _run(tmp_path / "clean.zarr", images)
    (images / "normal" / "03.png").write_bytes(b"")
    (summary,) = _run(tmp_path / "s.zarr", images, skip_bad=True)
    assert summary.n_missing == 1 and summary.status == "written"
    store = open_store(tmp_path / "s.zarr")
    row = int(np.flatnonzero(store.ids("ds") == "normal/03.png")[0])
    valid = store.valid_rows("ds", TINY)
    assert valid.sum() == 41 and not valid[row]
    (missing,) = store.missing("ds", TINY)
    assert (
        missing["row"] == row and missing["id"] == "normal/03.png" and "empty" in missing["reason"]
    )
    emb, clean = (
        store.embeddings("ds", TINY),
        open_store(tmp_path / "clean.zarr").embeddings("ds", TINY),
    )
    assert not emb[row].any()
    assert np.array_equal(emb[valid], clean[valid])


def test_complete_backbone_is_skipped_and_overwrite_redoes_it(tmp_path, images):
    _run(tmp_path / "s.zarr", images)
    before = _chunk_bytes(tmp_path / "s.zarr", TINY)
    (skipped,) = _run(tmp_path / "s.zarr", images)
    assert skipped.status == "skipped" and skipped.rows_extracted == 0
    (redone,) = _run(tmp_path / "s.zarr", images, overwrite=True, dtype="float32")
    assert redone.status == "written" and redone.rows_extracted == 42
    info = open_store(tmp_path / "s.zarr").array_info("ds", TINY)
    assert info.complete and info.dtype == "float32"
    assert _chunk_bytes(tmp_path / "s.zarr", TINY) != before


def test_a_different_dataset_under_the_same_name_conflicts(tmp_path, images):
    _run(tmp_path / "s.zarr", images)
    other = tmp_path / "other"
    _write_images(other, per_class=5)
    with pytest.raises(ConflictError, match="already exists"):
        _run(tmp_path / "s.zarr", other)


def test_nan_backbone_is_refused_and_not_marked_complete(tmp_path, images):
    # the refusal names the images (the ids of the batch), not "(e.g. )"
    with pytest.raises(InvalidDataError, match=r"nanconv.test' produced NaN .*e\.g\. \['benign/"):
        _run(tmp_path / "s.zarr", images, backbones=[NAN])
    info = open_store(tmp_path / "s.zarr").array_info("ds", NAN)
    assert not info.complete and info.rows_written == 0


def test_unknown_backbone_fails_before_anything_is_written(tmp_path, images):
    with pytest.raises(UnknownBackboneError, match="tinyconv.tset"):
        _run(tmp_path / "s.zarr", images, backbones=[TINY, "tinyconv.tset"])
    assert not (tmp_path / "s.zarr").exists()
    with pytest.raises(InvalidDataError, match="multiple of batch_size"):
        _run(tmp_path / "s.zarr", images, chunk_rows=6)


# ----------------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_passes_options_through_and_prints_a_summary(tmp_path, images):
    store = tmp_path / "s.zarr"
    args = ["extract", str(store), "--dataset", "ds", "--source", str(images), "--backbone", TINY]
    args += ["--backbone", TINY2, "--batch-size", "8", "--workers", "0", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    assert TINY in result.output and "written" in result.output
    info = open_store(store).array_info("ds", TINY2)
    assert info.complete and info.dtype == "float32" and info.provenance["batch_size"] == 8
    again = runner.invoke(app, [*args, "--dtype", "float32"])
    assert again.exit_code == 0 and "skipped" in again.output


def test_cli_csv_columns_and_skip_bad(tmp_path, images):
    lines = ["file,diagnosis,fold,patient"]
    for i, p in enumerate(sorted(images.rglob("*.*"))):
        rel = p.relative_to(images).as_posix()
        lines.append(f"images/{rel},{p.parent.name},{('train', 'test')[i % 2]},p{i}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    (images / "benign" / "00.png").write_bytes(b"")
    args = [
        "extract",
        str(tmp_path / "s.zarr"),
        "--dataset",
        "ds",
        "--source",
        str(tmp_path / "m.csv"),
    ]
    args += ["--backbone", TINY, "--workers", "0", "--device", "cpu", "--path-column", "file"]
    args += ["--label-column", "diagnosis", "--split-column", "fold", "--group-column", "patient"]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "benign/00.png" in failed.output
    result = runner.invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "s.zarr")
    assert store.split("ds").tolist() == [0, 2] * 21
    assert store.group("ds")[:2].tolist() == ["p0", "p1"]
    assert store.missing("ds", TINY)[0]["id"] == "images/benign/00.png"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--source", "no/such/folder", "--backbone", TINY], "does not exist"),
        (["--source", "IMAGES", "--backbone", "tinyconv.tset"], "did you mean 'tinyconv.test'"),
        (["--source", "IMAGES", "--backbone", TINY, "--weights", "oops"], "NAME=PATH"),
    ],
)
def test_cli_user_errors_exit_1_with_one_line(tmp_path, images, extra, message):
    extra = [str(images) if e == "IMAGES" else e for e in extra]
    result = runner.invoke(app, ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", *extra])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert result.output.strip().startswith("error:")


def test_cli_extract_has_help():
    result = runner.invoke(app, ["extract", "--help"])
    assert (
        result.exit_code == 0
        and "--skip-bad" in result.output
        and "--label-column" in result.output
    )


def test_cli_chunk_rows_sets_the_resume_unit_and_the_default_gives_a_small_set_several(tmp_path):
    """--chunk-rows reaches the store; without it, 150 images (16-d rows: one ~4 MiB chunk would
    hold them all) get 64-row chunks, 3 resume points, each a whole number of batches."""
    images = tmp_path / "images"
    _write_images(images, per_class=50)
    base = ["--source", str(images), "--backbone", TINY, "--batch-size", "8", "--workers", "0"]
    for store, extra, rows in (("a.zarr", ["--chunk-rows", "24"], 24), ("b.zarr", [], 64)):
        args = ["extract", str(tmp_path / store), "-d", "ds", *base, "--device", "cpu", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        info = open_store(tmp_path / store).array_info("ds", TINY)
        assert info.complete and info.chunk_rows == rows
        assert len(open_store(tmp_path / store).chunks_done("ds", TINY)) == -(-150 // rows)
    bad = runner.invoke(app, ["extract", str(tmp_path / "c.zarr"), "-d", "ds", *base,
                              "--chunk-rows", "12"])  # fmt: skip
    assert bad.exit_code == 1 and "multiple of batch_size (8)" in bad.output

"""One decode for many backbones, the work plan, and checking everything before the store exists.

Equality is checked on the stored chunk files' bytes against each backbone extracted alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision

from embedstore import open_store
from embedstore.data import ImageFolderSource
from embedstore.errors import (
    InvalidDataError,
    SourceError,
    UnknownBackboneError,
    WeightsNotFoundError,
)
from embedstore.extraction import extract
from embedstore.extraction._plan import Job, split_work
from embedstore.extraction._prepare import is_cnn
from tests.extraction.helpers import (
    TINY,
    TINY2,
    chunk_bytes,
    register_tiny,
    unregister_tiny,
    write_images,
)


@pytest.fixture(scope="module", autouse=True)
def tiny_backbones():
    register_tiny()
    yield
    unregister_tiny()


@pytest.fixture
def images(tmp_path):
    return write_images(tmp_path / "images")


class CountingSource(ImageFolderSource):
    """An image folder that counts how often each image is read and decoded."""

    def __init__(self, root):
        super().__init__(root)
        self.loads = 0

    def load(self, index):
        self.loads += 1
        return super().load(index)


def _interrupt_at(rows):
    def progress(p):
        if p.done >= rows:
            raise KeyboardInterrupt

    return progress


def _run(store, source, backbones, **kw):
    kw = {"workers": 0, "device": "cpu", "batch_size": 4, "dtype": "float32", **kw}
    return extract(store, dataset="ds", source=source, backbones=backbones, **kw)


def test_two_backbones_one_decode_same_bytes_as_each_alone(tmp_path, images):
    src = CountingSource(images)
    both = _run(tmp_path / "both.zarr", src, [TINY, TINY2], chunk_rows=8)
    assert src.loads == len(src) == 42  # each image read and decoded once, not once per backbone
    assert [(s.backbone, s.pass_index, s.rows_extracted) for s in both] == [
        (TINY, 0, 42),
        (TINY2, 0, 42),
    ]
    for name in (TINY, TINY2):
        _run(tmp_path / f"{name}.zarr", images, [name], chunk_rows=8)
        alone = chunk_bytes(tmp_path / f"{name}.zarr", "ds", name)
        assert chunk_bytes(tmp_path / "both.zarr", "ds", name) == alone and len(alone) == 6
    info = open_store(tmp_path / "both.zarr").array_info("ds", TINY2)
    assert info.provenance["decoded_with"] == [TINY] and info.provenance["world_size"] == 1


def test_different_chunk_sizes_resume_together_bit_identical(tmp_path, images):
    """TINY's array was begun with 8-row chunks, TINY2's is new with 12-row chunks: one pass
    writes both, each chunk by its own writer, and each equals its backbone extracted alone."""
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "s.zarr", images, [TINY], chunk_rows=8, progress=_interrupt_at(20))
    assert open_store(tmp_path / "s.zarr").array_info("ds", TINY).rows_written == 16
    src = CountingSource(images)
    resumed, fresh = _run(tmp_path / "s.zarr", src, [TINY, TINY2], chunk_rows=12)
    assert (resumed.status, resumed.start_row, resumed.rows_extracted) == ("resumed", 16, 26)
    assert (fresh.status, fresh.rows_extracted) == ("written", 42)
    assert src.loads == 42
    store = open_store(tmp_path / "s.zarr")
    assert store.array_info("ds", TINY).chunk_rows == 8
    assert store.array_info("ds", TINY2).chunk_rows == 12
    _run(tmp_path / "a.zarr", images, [TINY], chunk_rows=8)
    _run(tmp_path / "b.zarr", images, [TINY2], chunk_rows=12)
    assert chunk_bytes(tmp_path / "s.zarr", "ds", TINY) == chunk_bytes(
        tmp_path / "a.zarr", "ds", TINY
    )
    assert chunk_bytes(tmp_path / "s.zarr", "ds", TINY2) == chunk_bytes(
        tmp_path / "b.zarr", "ds", TINY2
    )


def test_backbones_with_other_batch_sizes_run_in_separate_passes(tmp_path, images):
    _run(tmp_path / "s.zarr", images, [TINY], chunk_rows=6, batch_size=3)
    open_store(tmp_path / "s.zarr", mode="r+").delete_embeddings("ds", TINY)
    # TINY2 first made with 6-row chunks: a batch of 4 does not divide them, so it runs with 3
    with pytest.raises(KeyboardInterrupt):
        _run(
            tmp_path / "s.zarr",
            images,
            [TINY2],
            chunk_rows=6,
            batch_size=3,
            progress=_interrupt_at(9),
        )
    summaries = _run(tmp_path / "s.zarr", images, [TINY, TINY2], chunk_rows=8)
    assert [s.pass_index for s in summaries] == [0, 1]
    info = open_store(tmp_path / "s.zarr").array_info("ds", TINY2)
    assert info.provenance["batch_size"] == 3 and info.complete
    _run(tmp_path / "alone.zarr", images, [TINY2], chunk_rows=6, batch_size=3)
    assert chunk_bytes(tmp_path / "s.zarr", "ds", TINY2) == chunk_bytes(
        tmp_path / "alone.zarr", "ds", TINY2
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"backbones": [TINY, "tinyconv.tset"]}, UnknownBackboneError, "tinyconv.tset"),
        ({"weights": {TINY: "no/such/file.pth"}}, WeightsNotFoundError, "file.pth"),
        ({"weights": {TINY: "BAD"}}, Exception, "BAD"),
        ({"weights": {TINY2: "x.pth"}}, InvalidDataError, "not among the backbones"),
        ({"source": "no/such/folder"}, SourceError, "does not exist"),
        ({"dtype": "float64"}, InvalidDataError, "float16"),
        ({"chunk_rows": 6}, InvalidDataError, "multiple of batch_size"),
        ({"workers": -1}, InvalidDataError, "workers"),
        ({"dataset": "a/b"}, InvalidDataError, "dataset name"),
    ],
)
def test_nothing_is_created_before_everything_is_checked(tmp_path, images, kwargs, error, message):
    bad_file = tmp_path / "not_a_checkpoint.pth"
    bad_file.write_bytes(b"this is not a torch checkpoint")
    if kwargs.get("weights") == {TINY: "BAD"}:
        kwargs = {"weights": {TINY: str(bad_file)}}
        message = "not_a_checkpoint.pth"
    args = {"dataset": "ds", "source": images, "backbones": [TINY], "workers": 0, "device": "cpu"}
    args.update(batch_size=4, **kwargs)
    with pytest.raises(error, match=message) as caught:
        extract(tmp_path / "s.zarr", **args)
    assert caught.type.__module__ == "embedstore.errors"
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "s.zarr.locks").exists()


def test_split_work_gives_each_chunk_to_one_rank_and_balances(tmp_path):
    """Hand-checked: 40 rows, batch 4; A has 8-row chunks (all to do), B 12-row chunks with its
    second chunk already done. Every chunk goes to exactly one rank, whole, and each rank decodes
    the batches its chunks need."""
    a = Job(
        name="A",
        index=0,
        dim=4,
        dtype="float32",
        chunk_rows=8,
        batch_size=4,
        rows_before=0,
        missing_before=0,
        status="written",
        todo=((0, 8), (8, 16), (16, 24), (24, 32), (32, 40)),
    )
    b = Job(
        name="B",
        index=1,
        dim=4,
        dtype="float32",
        chunk_rows=12,
        batch_size=4,
        rows_before=12,
        missing_before=0,
        status="resumed",
        todo=((0, 12), (24, 36), (36, 40)),
    )
    one, two = split_work([a, b], 40, 2)
    assert one.runs == {"A": ((0, 24),), "B": ((0, 12),)}
    assert two.runs == {"A": ((24, 40),), "B": ((24, 40),)}
    assert one.batches == ((0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24))
    assert two.batches == ((24, 28), (28, 32), (32, 36), (36, 40))
    (solo,) = split_work([a, b], 40, 1)
    assert solo.runs == {"A": ((0, 40),), "B": ((0, 12), (24, 40))}
    assert len(solo.batches) == 10
    assert not solo.needs("B", 12) and solo.needs("B", 24) and solo.needs("A", 12)


def test_channels_last_is_chosen_from_the_modules_not_the_name():
    with torch.random.fork_rng():
        vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    resnet = torchvision.models.resnet18()
    assert not is_cnn(vit)  # one patch-embedding conv: ~1% of the weights
    assert is_cnn(resnet)
    assert not is_cnn(torch.nn.Linear(3, 3)) and not is_cnn(torch.nn.ReLU())


def test_skipped_and_written_in_one_call_and_float32_values(tmp_path, images):
    _run(tmp_path / "s.zarr", images, [TINY])
    first, second = _run(tmp_path / "s.zarr", images, [TINY, TINY2])
    assert (first.status, first.rows_extracted, second.status) == ("skipped", 0, "written")
    stored = open_store(tmp_path / "s.zarr").embeddings("ds", TINY2)
    assert stored.shape == (42, 24) and np.isfinite(stored).all() and stored.std() > 0

"""One device check for every command: extraction's per-rank GPU choice included."""

from __future__ import annotations

import pytest
import torch

from embedstore.devices import resolve_device
from embedstore.errors import InvalidDataError
from embedstore.extraction._prepare import check_options

GPU = torch.cuda.is_available()


def test_a_rank_takes_its_own_gpu_for_auto_and_cuda():
    assert resolve_device("cpu", local_rank=3) == "cpu"
    assert resolve_device("auto", local_rank=0) == ("cuda:0" if GPU else "cpu")
    if GPU:  # GPU only: 'cuda' under torchrun is cuda:LOCAL_RANK, an explicit cuda:N is kept
        assert resolve_device("cuda", local_rank=0) == "cuda:0"
        assert resolve_device("cuda:0", local_rank=5) == "cuda:0"
        with pytest.raises(InvalidDataError, match="LOCAL_RANK 99"):
            resolve_device("cuda", local_rank=99)
    else:
        with pytest.raises(InvalidDataError, match="no CUDA GPU"):
            resolve_device("cuda", local_rank=0)


def test_extract_options_use_the_same_check():
    base = dict(dataset="d", batch_size=8, workers=0, dtype="float32", overwrite=False)
    base.update(skip_bad=False, chunk_rows=None)
    assert check_options(device="auto", **base).device == "auto"  # resolved per rank later
    with pytest.raises(InvalidDataError, match="cpu, cuda, cuda:N, auto; got 'gpu'"):
        check_options(device="gpu", **base)
    if not GPU:
        with pytest.raises(InvalidDataError, match="no CUDA GPU"):
            check_options(device="cuda:1", **base)

"""Which torch device a computation runs on: one check for every command that takes ``--device``.

torch is imported only when a device is resolved, so importing this module is free.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from embedstore.errors import InvalidDataError

__all__ = ["DEVICES", "resolve_device"]

DEVICES = ("cpu", "cuda", "cuda:N", "auto")
_CUDA = re.compile(r"^cuda(:\d+)?$")


def resolve_device(device: str, *, local_rank: int | None = None) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cpu' / 'cuda' / 'cuda:N' are checked.

    ``local_rank``: the process's rank on its machine (torchrun's ``LOCAL_RANK``, as extraction
    passes it); then 'auto' and 'cuda' mean this process's own GPU, ``cuda:LOCAL_RANK``, and an
    explicit 'cuda:N' is kept as asked.

    Raises:
        InvalidDataError: the name is not one of ``DEVICES`` (e.g. 'gpu'), or a CUDA device was
            asked for that torch does not see.
    """
    name = str(device).strip().lower()
    asked = f"'{device}'"
    if name == "cpu":
        return "cpu"
    if name != "auto" and not _CUDA.match(name):
        hint = " (for a GPU: cuda)" if name in ("gpu", "nvidia") or name.startswith("gpu") else ""
        raise InvalidDataError(f"device must be one of {', '.join(DEVICES)}; got '{device}'{hint}")
    if no_gpu_here():  # known without importing torch
        if name == "auto":
            return "cpu"
        raise _no_cuda(device)
    import torch

    available = torch.cuda.is_available()
    if name == "auto" and not available:
        return "cpu"
    if name in ("auto", "cuda") and local_rank is not None:
        name = f"cuda:{local_rank}"  # GPU only: this process's GPU under torchrun
        asked = f"'{device}' (LOCAL_RANK {local_rank}: '{name}')"
    elif name == "auto":
        return "cuda"
    if not available:
        raise _no_cuda(device)
    index = int(name.split(":")[1]) if ":" in name else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise InvalidDataError(
            f"device {asked} does not exist: torch sees {count} CUDA GPU(s) "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return name


def no_gpu_here() -> bool:
    """True when this machine surely has no GPU torch could use, known without importing torch:
    ``CUDA_VISIBLE_DEVICES`` hides every device, or (Linux) there is no NVIDIA driver
    (``/proc/driver/nvidia``), no ROCm device (``/dev/kfd``) and no WSL GPU (``/dev/dxg``), or
    macOS (no CUDA). False means "ask torch"."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    if sys.platform == "darwin":
        return True
    if sys.platform.startswith("linux"):
        return not any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"))
    return False


def _no_cuda(device: str) -> InvalidDataError:
    return InvalidDataError(
        f"device '{device}' was asked for but there is no CUDA GPU on this machine "
        "(torch.cuda.is_available() is False); use --device cpu, or --device auto to take a "
        "GPU when there is one"
    )

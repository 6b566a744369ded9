"""Tiny real backbones and image folders for the extraction tests, and ``python -m
tests.extraction.helpers ARGS``: the ``embedstore`` command with those backbones registered, for
tests that start real processes (torchrun ranks, concurrent writers).

``EMBEDSTORE_TEST_PIDS=DIR`` makes each process write its pid to ``DIR/rank<RANK>.pid``, so that
a test can SIGKILL one chosen rank; ``EMBEDSTORE_TEST_SLOW=SECONDS`` makes ``tinyslow.test``
sleep that long per batch, and ``EMBEDSTORE_TEST_GATE=FILE`` makes it wait until FILE exists,
so that a test can act while a run is under way.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from embedstore.backbones import BackboneSpec, Preprocess, register, unregister

TINY, TINY2, SLOW = "tinyconv.test", "tinyconv_wide.test", "tinyslow.test"


def assert_stored_close(stored: np.ndarray, reference: np.ndarray, dtype: str) -> None:
    """``stored`` (as read back from an array kept as ``dtype``) equals the float32 ``reference``
    at the store's precision.

    A forward pass in other batches, threads or memory formats may differ in the last float32
    bits, and a value near a rounding boundary of ``dtype`` then rounds to its neighbour: one
    step of the stored type (4.9e-4 near 0.6 for float16) is the store's precision, so that is
    what may differ, and nothing more.
    """
    stored = np.asarray(stored, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert stored.shape == reference.shape, (stored.shape, reference.shape)
    step = np.spacing(np.abs(stored).astype(dtype)).astype(np.float64)  # one unit in the last place
    over = np.abs(stored - reference) - step
    worst = float(over.max()) if over.size else 0.0
    assert worst <= 1e-7, (
        f"a stored value differs from the reference by more than one step of {dtype} "
        f"({worst:.3g} over)"
    )


def tiny_conv(width: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, width),
    )


class _Slow(torch.nn.Module):
    """tinyconv.test's architecture (same weights), slowed down or held at a gate per batch."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_conv(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(float(os.environ.get("EMBEDSTORE_TEST_SLOW", "0")))
        gate = os.environ.get("EMBEDSTORE_TEST_GATE")
        deadline = time.monotonic() + 120
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.net(x)


def tiny_specs() -> list[BackboneSpec]:
    """Three random-weight conv backbones (built with seed 0: the same in every process); the
    second has another preprocessing (grey-scale-like normalisation, 28 px) and width."""
    pre = Preprocess(resize=36, crop=32)
    pre2 = Preprocess(resize=30, crop=28, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return [
        BackboneSpec(TINY, "tinyconv", 16, lambda: tiny_conv(16), None, dict, pre),
        BackboneSpec(TINY2, "tinyconv", 24, lambda: tiny_conv(24), None, dict, pre2),
        BackboneSpec(SLOW, "tinyconv", 16, _Slow, None, dict, pre),
    ]


def register_tiny() -> None:
    for spec in tiny_specs():
        unregister(spec.name)
        register(spec)


def unregister_tiny() -> None:
    for spec in tiny_specs():
        unregister(spec.name)


def write_images(root: Path, per_class: int = 14, seed: int = 7) -> Path:
    """Grey and RGB PNG/JPEG images of random sizes (16-32 px), three classes."""
    rng = np.random.default_rng(seed)
    for c in ("benign", "malignant", "normal"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            h, w = int(rng.integers(16, 33)), int(rng.integers(16, 33))
            if i % 3 == 0:
                grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
                Image.fromarray(grey, "L").save(root / c / f"{i:02d}.png")
            else:
                arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / c / f"{i:02d}.{'jpg' if i % 2 else 'png'}")
    return root


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread, as the subprocesses do (OMP_NUM_THREADS=1): same bytes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def chunk_bytes(store: Path, dataset: str, backbone: str) -> dict[str, bytes]:
    """Every stored chunk file of one embeddings array, by its key."""
    base = Path(store) / dataset / backbone / "embeddings" / "c"
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


ROOT = Path(__file__).resolve().parents[2]


def cli_process(*args: str, slow: float = 0.0, gate: Path | None = None) -> subprocess.Popen:
    """``embedstore extract ARGS`` (this checkout, tiny backbones registered) as a child process,
    one torch thread, stdout and stderr together."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env["EMBEDSTORE_TEST_SLOW"] = str(slow)
    env["EMBEDSTORE_TEST_GATE"] = str(gate or "")
    cmd = [sys.executable, "-m", "tests.extraction.helpers", "extract", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def cli_args(store: Path, images: Path, backbone: str) -> list[str]:
    """Options of the tests' extractions: batches of 4 in chunks of 8 rows, float32, CPU."""
    return [str(store), "-d", "ds", "--source", str(images), "-b", backbone, "--batch-size", "4",
            "--chunk-rows", "8", "--workers", "0", "--device", "cpu", "--dtype", "float32"]  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    """Wait until ``path`` exists while ``proc`` runs (fails with its output if it ended)."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def reference_store(path: Path, images: Path) -> Path:
    """TINY and TINY2 extracted in this process with one thread, as the child processes run."""
    register_tiny()
    try:
        with one_thread():
            from embedstore.extraction import extract

            extract(path, dataset="ds", source=images, backbones=[TINY, TINY2], batch_size=4,
                    chunk_rows=8, workers=0, device="cpu", dtype="float32")  # fmt: skip
    finally:
        unregister_tiny()
    return path


def main() -> None:
    pid_dir = os.environ.get("EMBEDSTORE_TEST_PIDS")
    if pid_dir:
        Path(pid_dir, f"rank{os.environ.get('RANK', '0')}.pid").write_text(str(os.getpid()))
    register_tiny()
    from embedstore.cli.main import app

    sys.argv[0] = "embedstore"
    app()


if __name__ == "__main__":
    main()

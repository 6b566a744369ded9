"""The real `embedstore` command line with two tiny deterministic test backbones registered.

Run as ``python -m embedstore.testing.fault_cli extract STORE ...`` (PYTHONPATH = repo root) by the fault tests,
which must kill and resume extractions in separate processes. Everything after registration is
the unmodified CLI (``embedstore.cli.main.main``). ``wide.test`` writes 16,384-wide rows, so the default
~4 MiB chunk holds 64 rows (float32) and a few hundred tiny images make several chunks;
``huge.test`` outputs values past float16's range (±65,504).
"""

from __future__ import annotations

import torch

from embedstore.backbones import BackboneSpec, Preprocess, register

WIDE, HUGE, DIM = "wide.test", "huge.test", 16384


def _wide(scale: float = 1.0) -> torch.nn.Module:
    torch.manual_seed(0)  # the same weights in every process: resumed runs must match
    head = torch.nn.Linear(8, DIM)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        head,
    )
    with torch.no_grad():
        head.weight.mul_(scale)
    return net.eval()


def register_test_backbones() -> None:
    pre = Preprocess(resize=36, crop=32)
    for name, scale in ((WIDE, 1.0), (HUGE, 1e7)):

        def builder(s: float = scale) -> torch.nn.Module:
            return _wide(s)

        register(
            BackboneSpec(
                name=name, arch="wide", dim=DIM, builder=builder, weights=None,
                convert=dict, preprocess=pre, description="test backbone (fault tests)",
            )
        )  # fmt: skip


if __name__ == "__main__":
    register_test_backbones()
    from embedstore.cli.main import main

    main()

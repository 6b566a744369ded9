"""``Preprocess`` + ``ImageTransform`` against timm's own eval transform on real image files, and
the sparsam recipe (PIL NEAREST to 256x256, to_tensor, x2-1) written out independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from embedstore.backbones import Preprocess, get_backbone
from embedstore.data import ImageTransform
from embedstore.errors import InvalidDataError

timm = pytest.importorskip("timm")
from timm.data import create_transform  # noqa: E402


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """PNG and JPEG files of awkward sizes (portrait, landscape, smaller than the crop, grey)."""
    root = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h, mode) in enumerate([(301, 199, "RGB"), (90, 257, "RGB"), (50, 70, "L"), (224, 224, "RGB")]):  # fmt: skip
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        path = root / (f"{i}.jpg" if i % 2 else f"{i}.png")
        Image.fromarray(arr, mode).save(path)
        out.append(path)
    return out


CONFIGS = [
    dict(input_size=(3, 160, 160), interpolation="bicubic", crop_pct=0.875, crop_mode="center",
         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    dict(input_size=(3, 96, 96), interpolation="bilinear", crop_pct=1.0, crop_mode="center",
         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    dict(input_size=(3, 128, 128), interpolation="bicubic", crop_pct=0.9, crop_mode="squash",
         mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)),
    dict(input_size=(3, 112, 112), interpolation="bilinear", crop_pct=0.95, crop_mode="border",
         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    dict(input_size=(3, 64, 64), interpolation="nearest", crop_pct=1.0, crop_mode="squash",
         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
]  # fmt: skip


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['crop_mode']}-{c['interpolation']}")
def test_transform_equals_timms_eval_transform(images, cfg):
    ours = ImageTransform(Preprocess.from_timm(cfg))
    theirs = create_transform(**cfg, is_training=False)
    for path in images:
        img = Image.open(path)
        want = theirs(img.convert("RGB"))
        got = ours(img)
        assert got.shape == want.shape == (3, *cfg["input_size"][1:])
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"{path.name} {cfg}")


def test_timm_model_config_becomes_the_entry_preprocess():
    spec = get_backbone("timm/convnext_tiny.fb_in22k")
    p = spec.preprocess  # timm: 224 px, crop_pct 0.875, bicubic, ImageNet mean/std
    assert (p.resize, p.crop, p.crop_pct, p.interpolation, p.crop_mode) == (
        256, 224, 0.875, "bicubic", "center",
    )  # fmt: skip
    cfg = spec.config()
    assert cfg["timm_pretrained_cfg"]["hf_hub_id"] == "timm/convnext_tiny.fb_in22k"
    assert cfg["preprocess"]["crop_pct"] == 0.875


def test_sparsam_recipe_written_out(images):
    transform = ImageTransform(get_backbone("xcit_small_12_p8.sparsam_isic").preprocess)
    for path in images:
        img = Image.open(path).convert("RGB")
        want = to_tensor(img.resize((256, 256), Image.NEAREST)).clamp(0, 1) * 2 - 1
        torch.testing.assert_close(transform(img), want, rtol=0, atol=1e-6)


def test_bad_preprocess_is_one_clear_error():
    with pytest.raises(InvalidDataError, match="crop_mode must be one of"):
        Preprocess(crop_mode="stretch")
    with pytest.raises(InvalidDataError, match="non-square"):
        Preprocess.from_timm(dict(input_size=(3, 224, 160), mean=(0, 0, 0), std=(1, 1, 1)))

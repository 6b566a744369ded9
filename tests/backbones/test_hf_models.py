"""RAD-DINO (a transformers DINOv2 repo) and BiomedCLIP (an open_clip repo) run on timm: a tiny
random model written by transformers / open_clip themselves into a Hugging Face cache under the
real repo id loads offline through the registry entry, and gives the same embedding as the
library that wrote it (Dinov2Model.pooler_output; open_clip TimmModel = encode_image)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from embedstore.backbones import get_backbone, list_backbones, load_model, registry
from embedstore.backbones.hf_models import convert_hf_dinov2
from embedstore.data import ImageTransform

transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")
hf_constants = pytest.importorskip("huggingface_hub.constants")

RAD = "vit_base_patch14_dinov2.rad_dino"
CLIP = "vit_base_patch16.biomedclip"
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache for this test; resolved hub entries are forgotten
    afterwards so that other tests see the entries as this machine has them."""
    cache = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    yield cache
    for name in (RAD, CLIP):
        registry._REGISTRY.pop(name, None)


def _snapshot(cache, repo_id):
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snap = folder / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    return snap


def _images(tmp_path):
    rng = np.random.default_rng(2)
    out = []
    for i, (w, h) in enumerate([(120, 90), (70, 130), (80, 80)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


def test_hub_entries_are_listed_offline_without_their_configs(hf_cache):
    rows = {s.name: s for s in list_backbones()}
    assert rows[RAD].hub_id == "microsoft/rad-dino" and "huggingface-cli download" in (
        rows[RAD].description
    )
    assert rows[CLIP].hub_id == "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"


def test_rad_dino_repo_runs_on_timm(tmp_path, hf_cache):
    torch.manual_seed(41)
    config = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14,
        layerscale_value=0.5,
    )  # fmt: skip
    model = transformers.Dinov2Model(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # non-trivial layer scales, norms and biases
            p.add_(torch.randn_like(p) * 0.05)
    snap = _snapshot(hf_cache, "microsoft/rad-dino")
    model.save_pretrained(snap)
    processor = transformers.BitImageProcessorPil(
        size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56}, resample=3,
        image_mean=[0.53, 0.53, 0.53], image_std=[0.26, 0.26, 0.26], do_convert_rgb=True,
    )  # fmt: skip
    processor.save_pretrained(snap)
    spec = get_backbone(RAD)
    assert spec.dim == 32 and spec.recipe == "cls" and spec.hub_id == "microsoft/rad-dino"
    p = spec.preprocess
    assert (p.resize, p.crop, p.interpolation, p.mean) == (64, 56, "bicubic", (0.53,) * 3)
    loaded = load_model(spec)
    assert loaded.weights_origin == "hf-hub:microsoft/rad-dino"
    x = torch.rand(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(pixel_values=x).pooler_output
        torch.testing.assert_close(loaded.model(x), want, rtol=0, atol=2e-5)
    # the preprocessing: transformers' own PIL processor on the same files
    for path in _images(tmp_path):
        img = Image.open(path)
        theirs = torch.as_tensor(processor(img, return_tensors="np")["pixel_values"][0])
        ours = ImageTransform(spec.preprocess)(img)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5, msg=path.name)


def test_hf_dinov2_converter_accepts_the_newer_names_and_a_prefix():
    torch.manual_seed(42)
    config = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    sd = transformers.Dinov2Model(config).state_dict()
    old = convert_hf_dinov2({k: v for k, v in sd.items()})
    renamed = {
        "dinov2." + k.replace("attention.attention.query", "attention.q_proj")
        .replace("attention.attention.key", "attention.k_proj")
        .replace("attention.attention.value", "attention.v_proj")
        .replace("attention.output.dense", "attention.o_proj"): v
        for k, v in sd.items()
    }  # fmt: skip
    new = convert_hf_dinov2({"state_dict": renamed})
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in old)
    assert old["blocks.0.attn.qkv.weight"].shape == (48, 16) and "mask_token" not in str(old)


def test_biomedclip_repo_image_tower_runs_on_timm(tmp_path, hf_cache):
    from open_clip.timm_model import TimmModel
    from open_clip.transform import image_transform

    torch.manual_seed(43)
    tower = TimmModel("test_vit.r160_in1k", embed_dim=24, image_size=160, pool="", proj="linear")
    tower.eval()
    snap = _snapshot(hf_cache, "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    (snap / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": {"embed_dim": 24, "vision_cfg": {
            "timm_model_name": "test_vit.r160_in1k", "timm_model_pretrained": False,
            "timm_pool": "", "timm_proj": "linear", "image_size": 160},
            "text_cfg": {"hf_model_name": "not-used-by-the-image-tower"}},
        "preprocess_cfg": {"mean": mean, "std": std},
    }))  # fmt: skip
    ckpt = {f"visual.{k}": v for k, v in tower.state_dict().items()}
    ckpt |= {"text.proj.weight": torch.zeros(24, 8), "logit_scale": torch.tensor(4.6)}
    torch.save(ckpt, snap / "open_clip_pytorch_model.bin")
    spec = get_backbone(CLIP)
    assert spec.source == "open_clip" and spec.dim == 24
    loaded = load_model(spec)
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), tower(x), rtol=0, atol=1e-6)
    reference = image_transform(160, is_train=False, mean=mean, std=std)
    for path in _images(tmp_path):
        img = Image.open(path)
        torch.testing.assert_close(
            ImageTransform(spec.preprocess)(img), reference(img), rtol=0, atol=0
        )

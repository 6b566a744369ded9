"""Hugging Face hub models published for other libraries, run on timm:

- ``transformers`` DINOv2 repos (``Dinov2Model``, e.g. RAD-DINO ``microsoft/rad-dino``): the
  architecture is read from the repo's ``config.json`` and built as timm's DINOv2 ViT; the weights
  are converted from transformers' key layout (``convert_hf_dinov2``); the preprocessing is the
  repo's ``preprocessor_config.json``; the embedding is the class token after the final layer norm
  (transformers' ``pooler_output``);
- ``open_clip`` image towers on timm (e.g. BiomedCLIP): ``open_clip_config.json`` names the timm
  trunk, pooling and projection (open_clip ``timm_model.TimmModel``) and the preprocessing
  (``preprocess_cfg``; open_clip ``transform.image_transform``); the embedding is the projected
  image feature, what ``model.encode_image`` returns (not normalised).

Neither ``transformers`` nor ``open_clip`` is needed to run them; the tests use both as references.
This module makes their entries (specs); ``loading.py`` loads their weights.
Facts that live in those repos' config files are read from the files, never restated here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from embedstore.backbones.convert import convert_hf_dinov2, unwrap
from embedstore.backbones.hub import hub_cached, hub_file
from embedstore.backbones.specs import BackboneSpec, LazyEntry, Preprocess, rgb
from embedstore.errors import InvalidDataError

__all__ = [
    "OPEN_CLIP_FILES",
    "hf_entries",
    "convert_hf_dinov2",
    "preprocess_from_hf_processor",
    "preprocess_from_open_clip",
]

_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def preprocess_from_hf_processor(cfg: Mapping[str, Any]) -> Preprocess:
    """A transformers image processor config (BitImageProcessor / ViT / DINOv2 style:
    ``size``, ``crop_size``, ``resample``, ``image_mean``, ``image_std``) as a Preprocess."""
    size = cfg.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    crop = cfg.get("crop_size") or {}
    crop = crop.get("height") if isinstance(crop, Mapping) else crop
    resize: int | None
    if "shortest_edge" in size:
        resize, mode = int(size["shortest_edge"]), "center"
    elif size.get("height") and size.get("height") == size.get("width"):
        resize, mode = int(size["height"]), "squash"
    else:
        raise InvalidDataError(f"unsupported image processor size {size!r}; give a preprocess")
    if not cfg.get("do_resize", True):
        resize = None
    if not cfg.get("do_center_crop", True) or not crop:
        crop = resize if mode == "squash" else None
    if crop is None:
        raise InvalidDataError("the image processor does not centre-crop to a fixed size")
    normalize = cfg.get("do_normalize", True)
    return Preprocess(
        resize=resize, crop=int(crop),
        mean=rgb(cfg["image_mean"]) if normalize else None,
        std=rgb(cfg["image_std"]) if normalize else None,
        interpolation=_PIL_RESAMPLE.get(int(cfg.get("resample", 3)), "bicubic"),
        crop_mode=mode, crop_pct=None,
    )  # fmt: skip


def preprocess_from_open_clip(cfg: Mapping[str, Any]) -> Preprocess:
    """open_clip's eval transform (``transform.image_transform``, is_train=False): resize mode
    shortest -> centre crop, squash, longest -> pad; bicubic unless 'bilinear'."""
    image_size = cfg["model_cfg"]["vision_cfg"].get("image_size", 224)
    pre = cfg.get("preprocess_cfg") or {}
    mode = {"shortest": "center", "squash": "squash", "longest": "border"}[
        pre.get("resize_mode") or "shortest"
    ]
    mean = pre.get("mean") or (0.48145466, 0.4578275, 0.40821073)  # open_clip OPENAI_DATASET_MEAN
    std = pre.get("std") or (0.26862954, 0.26130258, 0.27577711)  # open_clip OPENAI_DATASET_STD
    return Preprocess(
        resize=int(image_size), crop=int(image_size),
        mean=rgb(mean), std=rgb(std),
        interpolation="bilinear" if pre.get("interpolation") == "bilinear" else "bicubic",
        crop_mode=mode, crop_pct=1.0,
    )  # fmt: skip


def _cached(repo: str, filename: str) -> bool:
    return hub_cached(repo, (filename,))


def _read_json(repo: str, filename: str, name: str) -> dict[str, Any]:
    with open(hub_file(repo, (filename,), name=name), encoding="utf-8") as f:
        return json.load(f)


def hf_dinov2_entry(name: str, repo: str, **fields: Any) -> LazyEntry:
    """A lazy entry for a transformers DINOv2 repo, run as timm's DINOv2 ViT."""

    def make() -> BackboneSpec:
        from embedstore.backbones.timm_models import named_timm_spec  # timm, torch: on first use

        cfg = _read_json(repo, "config.json", name)
        if cfg.get("model_type") != "dinov2" or cfg.get("use_swiglu_ffn"):
            raise InvalidDataError(
                f"{repo}/config.json describes a {cfg.get('model_type')!r} model "
                f"(use_swiglu_ffn={cfg.get('use_swiglu_ffn')}); expected a DINOv2 ViT with an MLP"
            )
        kwargs = (
            ("img_size", cfg.get("image_size", 224)), ("patch_size", cfg.get("patch_size", 14)),
            ("embed_dim", cfg["hidden_size"]), ("depth", cfg["num_hidden_layers"]),
            ("num_heads", cfg["num_attention_heads"]), ("mlp_ratio", cfg.get("mlp_ratio", 4)),
            ("init_values", cfg.get("layerscale_value", 1.0)),
            ("qkv_bias", cfg.get("qkv_bias", True)),
        )  # fmt: skip
        preprocess = preprocess_from_hf_processor(
            _read_json(repo, "preprocessor_config.json", name)
        )
        spec = named_timm_spec(
            name, "vit_base_patch14_dinov2", model_kwargs=kwargs, preprocess=preprocess,
            convert=convert_hf_dinov2, recipe="cls", layer="pooler_output (norm(cls_token))",
            **fields,
        )  # fmt: skip
        return replace(spec, hub_id=repo)

    return LazyEntry(
        make, stub=stub(name, repo, "timm", **fields), cached=lambda: _cached(repo, "config.json")
    )


def open_clip_entry(name: str, repo: str, **fields: Any) -> LazyEntry:
    """A lazy entry for an open_clip hub repo whose image tower is a timm model."""

    def make() -> BackboneSpec:
        cfg = _read_json(repo, "open_clip_config.json", name)
        vision = cfg["model_cfg"]["vision_cfg"]
        if not vision.get("timm_model_name"):
            raise InvalidDataError(f"{repo}: the image tower is not a timm model")
        kwargs = (
            ("model_name", vision["timm_model_name"]), ("embed_dim", cfg["model_cfg"]["embed_dim"]),
            ("pool", vision.get("timm_pool", "avg")), ("proj", vision.get("timm_proj", "linear")),
            ("proj_bias", vision.get("timm_proj_bias", False)),
        )  # fmt: skip
        import torch

        from embedstore.backbones.embedder import OpenClipTower

        with torch.device("meta"):
            tower = OpenClipTower(**dict(kwargs))
        preprocess = preprocess_from_open_clip(cfg)
        size = preprocess.crop
        assert size is not None  # preprocess_from_open_clip always crops to the image size
        with torch.no_grad():
            dim = tower(torch.empty(1, 3, size, size, device="meta")).shape[-1]
        return BackboneSpec(
            name, vision["timm_model_name"], int(dim), None, None, unwrap, preprocess,
            source="open_clip", recipe="pooled", model_kwargs=kwargs, hub_id=repo,
            layer="encode_image (projected, not normalised)", **fields,
        )  # fmt: skip

    return LazyEntry(
        make,
        stub=stub(name, repo, "open_clip", **fields),
        cached=lambda: _cached(repo, "open_clip_config.json"),
    )


def stub(name: str, repo: str, source: str, **fields: Any) -> BackboneSpec:
    """What `embedstore backbones` shows for an entry whose repo config is not on this machine."""
    note = f" [config not cached here: `huggingface-cli download {repo}`]"
    return BackboneSpec(
        name, f"(from {repo})", 0, None, None, unwrap,
        Preprocess(resize=None, crop=None, mean=None, std=None), source=source, hub_id=repo,
        **{**fields, "description": fields.get("description", "") + note},
    )  # fmt: skip


def hf_entries() -> dict[str, LazyEntry]:
    """The built-in entries of this kind (lazy: their config files are read on first use)."""
    return {
        # RAD-DINO (Pérez-García et al. 2024, Nat. Mach. Intell.): DINOv2 ViT-B/14 continued on
        # chest X-rays; model card huggingface.co/microsoft/rad-dino: "classifier trained on top
        # of the CLS token", CLS 768-d, patch grid 37x37 (518 px). Licence per the card: MIT
        # in the revision seen offline (earlier revisions: MSRLA); not gated as far as the card
        # says. Architecture and preprocessing come from the repo's own config files.
        "vit_base_patch14_dinov2.rad_dino": hf_dinov2_entry(
            "vit_base_patch14_dinov2.rad_dino",
            "microsoft/rad-dino",
            method="dinov2 (chest X-ray)",
            licence="MIT (model card; earlier revisions MSRLA)",
            description="RAD-DINO: DINOv2 ViT-B/14 on chest X-rays, class token",
            reference="huggingface.co/microsoft/rad-dino (config.json, preprocessor_config.json)",
        ),  # fmt: skip
        # BiomedCLIP (Zhang et al. 2023): the image tower of the open_clip model
        # hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224; tower, projection and
        # preprocessing come from its open_clip_config.json.
        "vit_base_patch16.biomedclip": open_clip_entry(
            "vit_base_patch16.biomedclip",
            "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
            method="clip (PMC-15M)",
            licence="MIT (model card)",
            description="BiomedCLIP image tower (ViT-B/16 + projection), encode_image output",
            reference="huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        ),  # fmt: skip
    }

"""``load_model``: build a backbone and load its weights, recording exactly what was loaded.

- builder entries (torchvision architectures): convert the checkpoint, load strictly;
- timm entries: find the file (``--weights`` path, the entry's source, the Hugging Face cache /
  hub as timm would, or timm's URL), unwrap it with the entry's converter, and let timm's own
  pretrained loading (checkpoint filter included) put it into the model; strictness is checked;
- ``transformers`` DINOv2 entries are timm entries (``hf_models.py`` makes them);
- ``open_clip`` entries: the ``visual.*`` weights of the hub file into an ``OpenClipTower``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedstore.backbones.convert import convert_auto, keep_prefix, unwrap
from embedstore.backbones.embedder import OpenClipTower
from embedstore.backbones.hf_models import OPEN_CLIP_FILES
from embedstore.backbones.hub import WEIGHT_FILES, hub_file
from embedstore.backbones.registry import get_backbone
from embedstore.backbones.specs import BackboneSpec, WeightsSource, jsonable
from embedstore.backbones.timm_models import create, timm_weights
from embedstore.backbones.weights import (
    ResolvedWeights,
    file_sha256,
    read_checkpoint,
    resolve_weights,
)
from embedstore.errors import CheckpointError, WeightsNotFoundError

__all__ = ["LoadedBackbone", "load_model", "load_state_dict_strict", "build_model"]

_SHOW = 5  # how many bad keys a message names
_USER_ORIGINS = ("explicit", "entry-file")


@dataclass(frozen=True)
class LoadedBackbone:
    """A ready model: eval mode, weights loaded; ``model(x)`` maps (B, 3, H, W) -> (B, spec.dim).

    ``verified``: the file's sha256 equals the hash published for it (False when none is
    published, or when ``unverified_weights`` let a different file through).
    ``timm_pretrained_cfg``: the pretrained config timm used (timm entries only).
    """

    spec: BackboneSpec
    model: nn.Module
    weights_path: str | None
    weights_sha256: str | None
    verified: bool = False
    weights_origin: str | None = None
    timm_pretrained_cfg: dict[str, Any] | None = field(default=None, compare=False)

    def provenance(self) -> dict[str, Any]:
        """What was loaded, beside ``spec.config()``, for the store's provenance."""
        out: dict[str, Any] = {
            "weights_verified": self.verified,
            "weights_origin": self.weights_origin,
        }
        if self.timm_pretrained_cfg is not None:
            import timm

            out["timm_version"] = timm.__version__
            out["timm_pretrained_cfg_used"] = jsonable(self.timm_pretrained_cfg)
        return out


# Fields of timm's PretrainedCfg (timm/models/_pretrained.py) that describe timm's published
# weights (where they are, what they were trained on, their licence and paper) rather than the
# architecture and its preprocessing: dropped when the user's own checkpoint was loaded instead.
_TIMM_WEIGHTS_FIELDS = (
    "url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "tag", "custom_load",
    "num_classes", "label_offset", "label_names", "label_descriptions", "license",
    "description", "origin_url", "paper_name", "paper_ids", "notes",
)  # fmt: skip


def own_weights_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """timm's pretrained config without what describes timm's own weights; says that the
    weights were the user's, and which of timm's tags the preprocessing defaults came from."""
    out = {k: v for k, v in dict(cfg).items() if k not in _TIMM_WEIGHTS_FIELDS}
    out["weights"] = "own checkpoint (see weights_path, weights_sha256)"
    if cfg.get("tag"):
        out["preprocessing_defaults_from_tag"] = cfg["tag"]
    return out


def _few(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    more = f" … and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return f"{len(keys)}: {shown}{more}"


def load_state_dict_strict(model: nn.Module, sd: dict[str, Any], *, what: str = "") -> None:
    """Load ``sd`` into ``model`` requiring exactly its keys and shapes; else CheckpointError."""
    expected = model.state_dict()
    sd = dict(sd)
    for k, v in expected.items():  # files saved before PyTorch 0.4.1 have no BN step counter
        if k.endswith(".num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"unexpected keys ({_few(unexpected)})")
        if wrong:
            parts.append(f"shape mismatches, checkpoint vs model ({_few(wrong)})")
        raise CheckpointError(
            f"checkpoint{f' for {what!r}' if what else ''} does not fit its architecture after "
            f"conversion: {'; '.join(parts)}. Expected the upstream file named in the registry "
            "(see `embedstore backbones`); a different architecture or format will not load"
        )
    model.load_state_dict(sd, strict=True)


def build_model(spec: BackboneSpec) -> nn.Module:
    """The bare architecture, built under ``torch.manual_seed(0)`` without touching global RNG."""
    if spec.builder is None:
        raise CheckpointError(f"backbone '{spec.name}' ({spec.source}) has no builder")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return spec.builder()


def _read_dict(path: str, name: str) -> dict[str, Any]:
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"checkpoint {path} for '{name}' holds a {type(ckpt).__name__}; "
            "expected a state dict or a dict wrapping one"
        )
    return ckpt


def _timm_weights(
    spec: BackboneSpec, weights: str | os.PathLike[str] | None, unverified: bool
) -> ResolvedWeights:
    """The file a timm entry loads: explicit > the entry's source > HF hub (as timm) > URL."""
    if spec.weights is not None:
        return resolve_weights(spec.weights, weights, name=spec.name, unverified=unverified)
    if weights is not None:
        src = WeightsSource(url=None, filename=Path(os.fspath(weights)).name)
        return resolve_weights(src, weights, name=spec.name, unverified=unverified)
    cfg = spec.pretrained_cfg or {}
    if cfg.get("source") == "local-dir":  # timm/local-dir:<folder> (config.json + weights file)
        return resolve_weights(_local_dir_file(cfg.get("file") or "", spec.name), name=spec.name)
    if spec.hub_id:
        files = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else WEIGHT_FILES
        repo, _, revision = spec.hub_id.partition("@")
        path = hub_file(repo, files, name=spec.name, revision=revision or None)
        return ResolvedWeights(path, file_sha256(path), f"hf-hub:{spec.hub_id}", False)
    timm_src = timm_weights(spec)
    if timm_src is None:
        raise WeightsNotFoundError(
            f"timm has no pretrained weights for '{spec.arch}' (no hf_hub_id or url in its "
            f"pretrained_cfg); pass a checkpoint with --weights {spec.name}=PATH"
        )
    return resolve_weights(timm_src, name=spec.name)


def _local_dir_file(folder: str, name: str) -> WeightsSource:
    """The weights file of a local timm folder, in timm's order (timm/models/_hub.py
    ``_PREFERRED_FILES``)."""
    for filename in (*WEIGHT_FILES, "pytorch_model.pth", "model.pth"):
        if (Path(folder) / filename).is_file():
            return WeightsSource(url=None, filename=filename, file=str(Path(folder) / filename))
    raise WeightsNotFoundError(
        f"local timm folder {folder} for '{name}' has none of {list(WEIGHT_FILES)}; expected "
        "config.json and model.safetensors (timm.models.save_for_hf writes both)"
    )


def _load_timm(
    spec: BackboneSpec, weights: str | os.PathLike[str] | None, unverified: bool
) -> LoadedBackbone:
    resolved = _timm_weights(spec, weights, unverified)
    ckpt = _read_dict(resolved.path, spec.name)
    # convert_auto (the on-the-fly default) is for files the user brings; a timm hub file is in
    # timm's own layout. An entry with its own converter (DINO, sparsam, HF DINOv2) always uses it.
    own = resolved.origin in _USER_ORIGINS
    sd = unwrap(ckpt) if (spec.convert is convert_auto and not own) else spec.convert(ckpt)
    classifier = (spec.pretrained_cfg or {}).get("classifier") or ()
    for head in (classifier,) if isinstance(classifier, str) else classifier:
        sd.pop(f"{head}.weight", None)  # the embedding never reads the classifier (timm drops
        sd.pop(f"{head}.bias", None)  # it too whenever num_classes differs)
    model, cfg = create(spec, sd)
    if own:  # the architecture's config, not the description of timm's weights that were not used
        cfg = own_weights_cfg(cfg)
        spec = replace(
            spec,
            pretrained_cfg=own_weights_cfg(spec.pretrained_cfg or {}),
            hub_id=None if spec.weights is None else spec.hub_id,
            licence=None if spec.weights is None else spec.licence,
        )
    return LoadedBackbone(
        spec, model, resolved.path, resolved.sha256, resolved.verified, resolved.origin, cfg
    )


def _load_open_clip(
    spec: BackboneSpec, weights: str | os.PathLike[str] | None, unverified: bool
) -> LoadedBackbone:
    """Load an ``open_clip`` entry: the ``visual.*`` weights into an OpenClipTower, strictly."""
    if weights is not None:
        src = WeightsSource(url=None, filename=os.path.basename(os.fspath(weights)))
        resolved = resolve_weights(src, weights, name=spec.name, unverified=unverified)
    elif spec.hub_id is None:
        raise WeightsNotFoundError(
            f"open_clip entry '{spec.name}' names no Hugging Face repo (hub_id); expected one, "
            f"or pass a checkpoint with --weights {spec.name}=PATH"
        )
    else:
        path = hub_file(spec.hub_id, OPEN_CLIP_FILES, name=spec.name)
        resolved = ResolvedWeights(path, file_sha256(path), f"hf-hub:{spec.hub_id}", False)
    sd = unwrap(_read_dict(resolved.path, spec.name))
    if any(k.startswith("visual.") for k in sd):
        sd = keep_prefix(sd, "visual.")
    tower = build_model(replace(spec, builder=lambda: OpenClipTower(**dict(spec.model_kwargs))))
    load_state_dict_strict(tower, sd, what=spec.name)
    tower.eval()
    for p in tower.parameters():
        p.requires_grad_(False)
    return LoadedBackbone(
        spec, tower, resolved.path, resolved.sha256, resolved.verified, resolved.origin
    )


def load_model(
    name_or_spec: str | BackboneSpec,
    weights: str | os.PathLike[str] | None = None,
    *,
    unverified_weights: bool = False,
) -> LoadedBackbone:
    """Build a backbone and load its weights: ``weights`` (a local file) if given, else the
    entry's source (hub cache, package, Hugging Face cache, download).

    A builder spec without a weights source is a random test backbone: built deterministically
    (seed 0), nothing loaded unless ``weights``. A file given for an entry with a published hash
    must match it unless ``unverified_weights`` (then ``verified`` is False).
    """
    spec = get_backbone(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if spec.source == "timm":
        return _load_timm(spec, weights, unverified_weights)
    if spec.source in ("transformers", "open_clip"):
        return _load_open_clip(spec, weights, unverified_weights)
    model = build_model(spec)
    path = digest = origin = None
    verified = False
    if spec.weights is not None:
        resolved = resolve_weights(
            spec.weights, weights, name=spec.name, unverified=unverified_weights
        )
        path, digest = resolved.path, resolved.sha256
        verified, origin = resolved.verified, resolved.origin
    elif weights is not None:
        path, digest, origin = os.fspath(weights), file_sha256(weights), "explicit"
    if path is not None:
        load_state_dict_strict(model, spec.convert(_read_dict(path, spec.name)), what=spec.name)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedBackbone(spec, model, path, digest, verified, origin)

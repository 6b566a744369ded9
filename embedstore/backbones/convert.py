"""Checkpoint converters: pure functions ``state_dict -> state_dict``, one per upstream format.

Each takes what ``torch.load`` returned for an upstream release (the bare state dict or the
training checkpoint wrapping it) and returns the state dict of the bare trunk as built by
``embedstore.backbones`` (torchvision key names, heads removed). ``detect_and_convert`` picks the
converter from sentinel keys. None of them loads anything; strict loading is done by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from embedstore.errors import CheckpointError

__all__ = [
    "StateDict",
    "unwrap",
    "keep_prefix",
    "convert_torchvision",
    "convert_simclr_v1",
    "convert_dino",
    "convert_swav",
    "convert_moco",
    "convert_byol",
    "convert_vissl",
    "convert_efficientnet_lite_timm",
    "convert_sparsam",
    "convert_auto",
    "convert_hf_dinov2",
    "detect_format",
    "detect_and_convert",
    "CONVERTERS",
]

StateDict = dict[str, Any]

# Wrapper keys that hold the state dict, tried in this order (DINO full checkpoints keep the
# teacher, which is the model DINO evaluates; BYOL PyTorch ports keep the online network).
_WRAPPERS = ("state_dict", "model", "teacher", "online_backbone", "online_network", "network")
# Heads that are never part of an embedding trunk (top-level module names).
_HEADS = (
    "fc.",
    "head.",
    "heads.",
    "classifier.",
    "projection_head.",
    "prototypes.",
    "projector.",
    "predictor.",
    "_fc.",
)
_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _is_state_dict(obj: Any) -> bool:
    """A mapping whose values are tensors (or tensor-likes), not nested checkpoints."""
    return isinstance(obj, Mapping) and all(hasattr(v, "shape") for v in obj.values())


def unwrap(ckpt: Mapping[str, Any]) -> StateDict:
    """Peel training-checkpoint wrappers until a state dict of tensors is left.

    Handles ``state_dict`` / ``model`` / ``teacher`` / ``online_backbone`` wrappers and VISSL's
    ``classy_state_dict -> base_model -> model -> trunk``.
    """
    obj: Any = ckpt
    for _ in range(6):
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        if "classy_state_dict" in obj:
            try:
                obj = obj["classy_state_dict"]["base_model"]["model"]["trunk"]
            except (KeyError, TypeError) as exc:
                raise CheckpointError(
                    "VISSL checkpoint has 'classy_state_dict' but no "
                    "'base_model' -> 'model' -> 'trunk' inside; expected a VISSL model-zoo file"
                ) from exc
            continue
        if "base_model" in obj and isinstance(obj["base_model"], Mapping):  # VISSL, inner level
            obj = obj["base_model"].get("model", obj["base_model"])
            continue
        if "trunk" in obj and isinstance(obj["trunk"], Mapping):
            obj = obj["trunk"]
            continue
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"cannot find a state dict in this checkpoint: expected tensors or one of the wrappers "
        f"{list(_WRAPPERS) + ['classy_state_dict']}, got keys {keys}"
    )


def _strip(sd: StateDict, prefixes: Iterable[str]) -> StateDict:
    """Remove each prefix in turn where every key that has it loses it (``module.`` first)."""
    for prefix in prefixes:
        sd = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in sd.items()}
    return sd


def _drop(sd: StateDict, prefixes: Iterable[str]) -> StateDict:
    prefixes = tuple(prefixes)
    return {k: v for k, v in sd.items() if not k.startswith(prefixes)}


def keep_prefix(sd: StateDict, prefix: str) -> StateDict:
    """Only the keys under ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _fix_densenet(sd: StateDict) -> StateDict:
    """Old torchvision DenseNet files spell ``norm.1.weight``; the module says ``norm1.weight``."""
    out = {}
    for k, v in sd.items():
        m = _DENSENET_OLD.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


def convert_torchvision(ckpt: Mapping[str, Any]) -> StateDict:
    """torchvision release (ResNet, DenseNet incl. old ``norm.1`` keys, MobileNetV2): drop heads."""
    sd = _strip(unwrap(ckpt), ["module."])
    return _drop(_fix_densenet(sd), _HEADS)


def convert_simclr_v1(ckpt: Mapping[str, Any]) -> StateDict:
    """tonylins/simclr-converter ``resnet50-1x.pth``: ``{'state_dict': torchvision keys + fc}``."""
    return convert_torchvision(ckpt)


def convert_dino(ckpt: Mapping[str, Any]) -> StateDict:
    """DINO: the released backbone file (bare keys), or a full checkpoint (``teacher`` with
    ``backbone.`` / ``head.``, or ``student`` with ``module.backbone.``)."""
    if isinstance(ckpt, Mapping) and not _is_state_dict(ckpt) and "teacher" not in ckpt:
        if isinstance(ckpt.get("student"), Mapping):
            ckpt = ckpt["student"]
    sd = _strip(unwrap(ckpt), ["module."])
    if any(k.startswith("backbone.") for k in sd):
        sd = keep_prefix(sd, "backbone.")
    return _drop(sd, _HEADS)


def convert_swav(ckpt: Mapping[str, Any]) -> StateDict:
    """SwAV (``swav_800ep_pretrain.pth.tar``): ``module.`` keys; drop projection, prototypes.

    Also the ``efficientnet_lite`` format (``efficientnet-lite-pytorch`` files: bare keys, the
    ImageNet classifier ``_fc`` dropped): the same rule, so the same function."""
    return _drop(_strip(unwrap(ckpt), ["module."]), _HEADS)


def convert_moco(ckpt: Mapping[str, Any]) -> StateDict:
    """MoCo v1/v2 and MoCo-CXR: ``{'state_dict': module.encoder_q.*, module.encoder_k.*,
    module.queue, module.queue_ptr}``; keep the query encoder, drop its MLP head."""
    sd = _strip(unwrap(ckpt), ["module."])
    if any(k.startswith("encoder_q.") for k in sd):
        sd = keep_prefix(sd, "encoder_q.")
    return _drop(_fix_densenet(sd), _HEADS)


def convert_byol(ckpt: Mapping[str, Any]) -> StateDict:
    """BYOL PyTorch conversions: torchvision keys (chigur / ajtejankar byol-convert), optionally
    under ``online_backbone`` / ``online_network`` wrappers or ``module.`` / ``online_network.`` /
    ``encoder.`` / ``net.`` prefixes; the projector, predictor and target network are dropped."""
    sd = unwrap(ckpt)
    sd = _drop(sd, ("target_network.", "target_encoder.", "module.target_network."))
    sd = _strip(sd, ["module.", "online_network.", "online_encoder."])
    for prefix in ("encoder.", "net.", "backbone."):
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in sd.items()}
    return _drop(sd, _HEADS + ("projection.", "prediction."))


def convert_vissl(ckpt: Mapping[str, Any]) -> StateDict:
    """VISSL model zoo (PIRL, ...): ``classy_state_dict.base_model.model.trunk`` with
    ``_feature_blocks.`` keys (torchvision names after the prefix); heads are outside the trunk."""
    sd = _strip(unwrap(ckpt), ["module.", "trunk.", "_feature_blocks."])
    return _drop(sd, _HEADS)


# efficientnet-lite-pytorch block order (flat ``_blocks.N``) -> timm's (stage, block): repeats per
# stage of EfficientNet-Lite0 (TF efficientnet_lite_builder.py; timm ``_gen_efficientnet_lite``).
_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
# Per block: the reference package's names -> timm's (InvertedResidual; the first block of stage 0
# is timm's DepthwiseSeparableConv, which has no expansion conv).
_LITE_IR = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3",
}  # fmt: skip
_LITE_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}


def convert_efficientnet_lite_timm(ckpt: Mapping[str, Any]) -> StateDict:
    """``efficientnet-lite-pytorch`` Lite0 file -> timm ``tf_efficientnet_lite0`` keys; the
    ImageNet classifier ``_fc`` is dropped (``convert_swav``'s rule, the ``efficientnet_lite``
    format), then the blocks are renamed."""
    sd = convert_swav(ckpt)
    where = [(s, b) for s, n in enumerate(_LITE0_REPEATS) for b in range(n)]
    out: StateDict = {}
    for k, v in sd.items():
        head, _, rest = k.partition(".")
        if head == "_blocks":
            index, _, rest = rest.partition(".")
            module, _, param = rest.partition(".")
            i = int(index)
            if i >= len(where):
                raise CheckpointError(
                    f"EfficientNet-Lite0 has {len(where)} blocks; the checkpoint has '{k}'"
                )
            names = _LITE_DS if i == 0 else _LITE_IR
            stage, block = where[i]
            out[f"blocks.{stage}.{block}.{names.get(module, module)}.{param}"] = v
        else:
            out[f"{_LITE_TOP.get(head, head)}.{rest}"] = v
    return out


def convert_sparsam(ckpt: Mapping[str, Any]) -> StateDict:
    """Nielsen et al. (IPMI-ICNS-UKE/sparsam) ``pretrained_*.pt``: ``torch.save`` of the DINO
    teacher's state dict, ``backbone.*`` (the XCiT) + ``projection_head.*`` (dropped). The authors
    keep the ``backbone.`` keys, strip the prefix and load strictly
    (``reproducability/reproduce_results.py``); so does this."""
    sd = unwrap(ckpt)
    if not any(k.startswith("backbone.") for k in sd):
        raise CheckpointError(
            f"a sparsam checkpoint holds 'backbone.*' and 'projection_head.*' keys; this one has "
            f"none under 'backbone.' (first keys: {list(sd)[:5]}); pass format 'auto' for others"
        )
    return keep_prefix(sd, "backbone.")


# Sub-models kept when present (self-supervised wrappers), and a wrapper prefix that every key
# shares (PyTorch Lightning's attribute name, DataParallel, torch.compile) that is stripped.
_SUBMODELS = ("backbone.", "encoder_q.", "online_network.encoder.", "online_encoder.")
_WRAPPED = re.compile(r"(^|\.)(?:module|_orig_mod)\.")
_SHARED = ("module", "_orig_mod", "model", "net", "encoder", "trunk", "teacher", "student")


def convert_auto(ckpt: Mapping[str, Any]) -> StateDict:
    """Own checkpoints in the usual layouts: a plain state dict; ``state_dict`` / ``model`` /
    ``teacher`` wrappers (PyTorch Lightning, DINO full checkpoints: the teacher is kept); keys
    under ``module.`` / ``_orig_mod.`` (DataParallel, torch.compile) anywhere; the ``backbone.``
    (DINO, sparsam) or ``encoder_q.`` (MoCo) sub-model when there is one; a prefix shared by
    every key (Lightning's ``model.`` / ``net.``). Heads outside the sub-model are dropped."""
    if isinstance(ckpt, Mapping) and not _is_state_dict(ckpt) and "teacher" not in ckpt:
        if isinstance(ckpt.get("student"), Mapping) and "state_dict" not in ckpt:
            ckpt = ckpt["student"]
    sd = unwrap(ckpt)
    sd = {_WRAPPED.sub(r"\1", k): v for k, v in sd.items()}
    for prefix in _SUBMODELS:
        if any(k.startswith(prefix) for k in sd):
            sd = keep_prefix(sd, prefix)
            break
    while sd and all("." in k for k in sd):
        first = {k.split(".", 1)[0] for k in sd}
        if len(first) != 1 or next(iter(first)) not in _SHARED:
            break
        sd = {k.split(".", 1)[1]: v for k, v in sd.items()}
    return sd


def convert_hf_dinov2(ckpt: Mapping[str, Any]) -> StateDict:
    """transformers ``Dinov2Model`` weights (``embeddings.*``, ``encoder.layer.N.*``,
    ``layernorm``; the ``query/key/value`` names transformers saves, or its newer
    ``q_proj/k_proj/v_proj/o_proj``; optional ``dinov2.`` prefix) -> timm VisionTransformer keys.
    The mask token (masked-image pretraining only) is dropped."""
    sd = unwrap(ckpt)
    if any(k.startswith("dinov2.") for k in sd):
        sd = keep_prefix(sd, "dinov2.")
    out: StateDict = {}
    qkv: dict[int, dict[str, Any]] = {}
    renames = {
        "norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
        "attention.output.dense": "attn.proj", "attention.o_proj": "attn.proj",
    }  # fmt: skip
    scales = {"layer_scale1": "ls1", "layer_scale2": "ls2"}  # lambda1 -> gamma
    top = {
        "embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
        "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
    }  # fmt: skip
    for k, v in sd.items():
        if k == "embeddings.mask_token":
            continue
        if k in top:
            out[top[k]] = v
            continue
        if not k.startswith("encoder.layer."):
            out[k] = v  # left for the strict load to name
            continue
        index, _, rest = k.removeprefix("encoder.layer.").partition(".")
        module, _, param = rest.rpartition(".")
        for part, name in (("query", "q"), ("key", "k"), ("value", "v"), ("q_proj", "q"),
                           ("k_proj", "k"), ("v_proj", "v")):  # fmt: skip
            if module in (f"attention.attention.{part}", f"attention.{part}"):
                qkv.setdefault(int(index), {})[f"{name}.{param}"] = v
                break
        else:
            if module in scales and param == "lambda1":
                module, param = scales[module], "gamma"
            out[f"blocks.{index}.{renames.get(module, module)}.{param}"] = v
    for i, parts in qkv.items():
        for param in ("weight", "bias"):
            if all(f"{n}.{param}" in parts for n in "qkv"):
                import torch  # here, so that listing the registry never imports torch

                out[f"blocks.{i}.attn.qkv.{param}"] = torch.cat(
                    [parts[f"{n}.{param}"] for n in "qkv"], dim=0
                )
            elif any(f"{n}.{param}" in parts for n in "qkv"):
                raise CheckpointError(f"layer {i} has only some of query/key/value {param}")
    return out


CONVERTERS: dict[str, Callable[[Mapping[str, Any]], StateDict]] = {
    "torchvision": convert_torchvision,
    "simclr_v1": convert_simclr_v1,
    "dino": convert_dino,
    "swav": convert_swav,
    "moco": convert_moco,
    "byol": convert_byol,
    "vissl": convert_vissl,
    "efficientnet_lite": convert_swav,  # the same rule: `module.` stripped, heads dropped
    "efficientnet_lite_timm": convert_efficientnet_lite_timm,
    "sparsam": convert_sparsam,
    "hf_dinov2": convert_hf_dinov2,
    "auto": convert_auto,
}


def detect_format(ckpt: Mapping[str, Any]) -> str:
    """Name the upstream format of a loaded checkpoint from its sentinel keys."""
    if isinstance(ckpt, Mapping) and "classy_state_dict" in ckpt:
        return "vissl"
    if isinstance(ckpt, Mapping) and ("teacher" in ckpt or "student" in ckpt):
        return "dino"
    if isinstance(ckpt, Mapping) and any(k.startswith("online_") for k in ckpt):
        return "byol"
    keys = list(unwrap(ckpt))
    if any(k.startswith(("_feature_blocks.", "trunk._feature_blocks.")) for k in keys):
        return "vissl"
    if any("encoder_q." in k for k in keys):
        return "moco"
    if any(
        k.startswith(("module.prototypes.", "prototypes.", "module.projection_head.")) for k in keys
    ):
        return "swav"
    if any(("online_network." in k or "predictor." in k or "projector." in k) for k in keys):
        return "byol"
    if any(k.startswith(("backbone.", "module.backbone.")) for k in keys):
        return "dino"
    if any(k.startswith("_conv_stem.") for k in keys):
        return "efficientnet_lite"
    return "torchvision"


def detect_and_convert(ckpt: Mapping[str, Any]) -> StateDict:
    """Convert a checkpoint of any known upstream format, chosen by ``detect_format``."""
    return CONVERTERS[detect_format(ckpt)](ckpt)

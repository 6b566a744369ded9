"""timm models as backbones: ``timm/<name>`` specs, their dim and preprocessing read from timm,
and creation with weights through timm's own pretrained-loading path.

A model is built with ``num_classes=0`` (timm's pre-logits output). Its preprocessing is
``Preprocess.from_timm(timm.data.resolve_model_data_config(model))`` and its dim is the width of
the recipe's output, measured by a forward pass on the meta device (no memory, no weights).
Weights: the caller reads and unwraps the file (``convert.py``), then timm loads that state dict
via ``pretrained_cfg_overlay=dict(state_dict=...)`` so the model's checkpoint filter still runs
(position-embedding resampling, key renames); strictness is checked here, since timm loads
without ``strict`` when the classifier is dropped.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from embedstore.backbones.convert import convert_auto
from embedstore.backbones.embedder import Embedder
from embedstore.backbones.hub import hub_errors
from embedstore.backbones.recipes import parse_recipe
from embedstore.backbones.specs import BackboneSpec, Preprocess, WeightsSource
from embedstore.errors import CheckpointError, InvalidDataError, UnknownBackboneError
from embedstore.names import TIMM_PREFIX, store_name

__all__ = [
    "timm_spec",
    "named_timm_spec",
    "with_recipe",
    "output_dim",
    "create",
    "meta_model",
    "check_timm_name",
    "timm_weights",
]

_SHOW = 5


def _timm():
    import timm  # imported on first use: `embedstore --help` never pays for it

    return timm


def check_timm_name(timm_name: str) -> None:
    """UnknownBackboneError with the closest timm names unless timm can build ``timm_name``."""
    timm = _timm()
    if timm_name.startswith(("hf-hub:", "local-dir:")):
        return
    from timm.models import split_model_name_tag

    arch, tag = split_model_name_tag(timm_name)
    if timm.is_model(arch) and (not tag or timm.list_pretrained(f"{arch}.{tag}")):
        return
    pool = timm.list_pretrained() if tag else timm.list_models()
    close = difflib.get_close_matches(timm_name, pool, n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    what = f"has no pretrained tag '{tag}'" if timm.is_model(arch) else "is not a timm model"
    raise UnknownBackboneError(
        f"'{timm_name}' {what}{hint} (timm {timm.__version__}; list names with "
        "`python -c \"import timm; print(timm.list_pretrained('*dino*'))\"`)"
    )


def meta_model(timm_name: str, model_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """The architecture on the meta device (no memory, no weights), ``num_classes=0``."""
    timm = _timm()
    check_timm_name(timm_name)
    repo = (
        timm_name.removeprefix("hf-hub:").split("@")[0] if timm_name.startswith("hf-hub:") else None
    )
    with hub_errors(repo, "config.json", f"timm/{timm_name}"), torch.device("meta"):
        return timm.create_model(timm_name, pretrained=False, num_classes=0, **(model_kwargs or {}))


def output_dim(spec: BackboneSpec, model: nn.Module | None = None) -> int:
    """Width of ``spec``'s recipe output, from timm's own attributes: ``head_hidden_size`` (the
    pre-logits width, where timm has one) for 'pooled', ``num_features`` (the width of
    ``forward_features``) for the others; a meta-device forward pass where neither is set."""
    model = model if model is not None else meta_model(spec.arch, dict(spec.model_kwargs))
    kind, n = parse_recipe(spec.recipe)
    Embedder(model, spec.recipe)  # refuses a recipe the model cannot give (no class token, ...)
    width = getattr(model, "num_features", None)
    pooled = getattr(model, "head_hidden_size", None) or width
    if isinstance(width, int) and isinstance(pooled, int):
        return {"pooled": pooled, "cls_mean": 2 * width, "last": n * width}.get(kind, width)
    size = int(spec.preprocess.crop or 224)
    with torch.no_grad():
        out = Embedder(model, spec.recipe)(torch.empty(1, 3, size, size, device="meta"))
    return int(out.shape[-1])


def _data_config(model: nn.Module) -> dict[str, Any]:
    from timm.data import resolve_model_data_config

    return dict(resolve_model_data_config(model))


def _spec_from_model(name: str, timm_name: str, model: nn.Module, **fields: Any) -> BackboneSpec:
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    preprocess = fields.pop("preprocess", None) or Preprocess.from_timm(_data_config(model))
    recipe = fields.pop("recipe", "pooled")
    parse_recipe(recipe)
    own = fields.get("weights") is not None  # then timm's hub id and licence are not this file's
    spec = BackboneSpec(
        name=name,
        arch=timm_name,
        dim=0,
        builder=None,
        weights=fields.pop("weights", None),
        convert=fields.pop("convert", convert_auto),
        preprocess=preprocess,
        layer=fields.pop("layer", recipe),
        method=fields.pop("method", cfg.get("tag") or "timm"),
        description=fields.pop("description", "")
        or f"timm {timm_name} ({cfg.get('architecture', timm_name)}), num_classes=0",
        source="timm",
        recipe=recipe,
        hub_id=fields.pop("hub_id", None) or (None if own else cfg.get("hf_hub_id")),
        licence=fields.pop("licence", None) or (None if own else cfg.get("license")),
        pretrained_cfg=cfg,
        **fields,
    )
    return replace(spec, dim=output_dim(spec, model))


def timm_spec(name: str) -> BackboneSpec:
    """The spec for ``timm/<timm name>`` (or its store spelling ``timm--<...>``)."""
    timm_name = name.removeprefix(TIMM_PREFIX).removeprefix(store_name(TIMM_PREFIX))
    if name.startswith(store_name(TIMM_PREFIX)):
        timm_name = timm_name.replace("--", "/")
    if not timm_name:
        raise UnknownBackboneError("'timm/' needs a timm model name after it, e.g. timm/resnet50")
    return named_timm_spec(store_name(TIMM_PREFIX + timm_name), timm_name)


def named_timm_spec(name: str, timm_name: str, **fields: Any) -> BackboneSpec:
    """The entry ``name`` on the timm model ``timm_name``: only what differs from timm's own config
    is given (recipe, weights, preprocessing override, licence, gating, model kwargs); the rest is
    read from timm (``zoo.timm_entry`` makes a lazy registry entry of it)."""
    kwargs = dict(fields.get("model_kwargs", ()))
    return _spec_from_model(name, timm_name, meta_model(timm_name, kwargs), **fields)


def with_recipe(spec: BackboneSpec, recipe: str) -> BackboneSpec:
    """``spec`` read with another recipe (``recipes.py``), named ``<spec.name>@<recipe>``; dim
    read from timm."""
    parse_recipe(recipe)
    if recipe == spec.recipe:
        return spec
    if spec.source != "timm":
        raise InvalidDataError(
            f"backbone '{spec.name}' is a {spec.source} model with the fixed embedding "
            f"'{spec.recipe}'; other recipes (@{recipe}) need a timm model (e.g. 'timm/{spec.arch}')"
        )
    variant = replace(spec, name=f"{spec.name}@{recipe}", recipe=recipe, layer=recipe)
    return replace(variant, dim=output_dim(variant))


@contextmanager
def _timm_load_report() -> Iterator[list[str]]:
    """Collect timm's own report of missing / unexpected keys during pretrained loading."""
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("timm.models._builder")
    handler, level, propagate = _Collect(logging.INFO), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _few(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    more = f" … and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return f"{len(keys)}: {shown}{more}"


def _bad_fit(spec: BackboneSpec, missing: list[str], unexpected: list[str], other: str = ""):
    parts = []
    if missing:
        parts.append(f"missing keys ({_few(missing)})")
    if unexpected:
        parts.append(f"unexpected keys ({_few(unexpected)})")
    if other:
        parts.append(other)
    return CheckpointError(
        f"checkpoint for '{spec.name}' does not fit timm's {spec.arch} after conversion: "
        f"{'; '.join(parts)}. Expected a checkpoint of this architecture (see `embedstore "
        "backbones`); a different architecture or format will not load"
    )


_QUOTED = re.compile(r'"([^"]+)"')
_SIZE = re.compile(
    r"size mismatch for ([^:]+): copying a param with shape torch.Size\(\[([^\]]*)\]\) from "
    r"checkpoint, the shape in current model is torch.Size\(\[([^\]]*)\]\)"
)


def _torch_load_error(text: str) -> tuple[list[str], list[str], str]:
    """(missing, unexpected, shape mismatches) from ``load_state_dict(strict=True)``'s message."""

    def keys(label: str) -> list[str]:
        return _QUOTED.findall(text.split(label, 1)[1].split("\n")[0]) if label in text else []

    sizes = [f"{k} [{a}] vs [{b}]" for k, a, b in _SIZE.findall(text)]
    other = f"shape mismatches, checkpoint vs model ({_few(sizes)})" if sizes else ""
    missing, unexpected = keys("Missing key(s)"), keys("Unexpected key(s)")
    if not (missing or unexpected or other):
        other = text.splitlines()[0] if text else "timm could not load it"
    return missing, unexpected, other


def _timm_load_log(lines: list[str]) -> tuple[list[str], list[str]]:
    """(missing, unexpected) from timm's own report of a non-strict pretrained load."""
    missing: list[str] = []
    unexpected: list[str] = []
    for line in lines:
        m = re.match(r"(Missing|Unexpected) keys \((.*)\) (discovered|found)", line, re.S)
        if m:
            keys = [k for k in m.group(2).split(", ") if k]
            (missing if m.group(1) == "Missing" else unexpected).extend(keys)
    return missing, unexpected


def create(spec: BackboneSpec, state_dict: dict[str, Any] | None) -> tuple[nn.Module, dict]:
    """Build ``spec`` (eval mode) with ``state_dict`` loaded through timm's pretrained path, or
    random init when None. Returns the Embedder and the pretrained_cfg timm used."""
    timm = _timm()
    kwargs = dict(spec.model_kwargs)
    if state_dict is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = timm.create_model(spec.arch, pretrained=False, num_classes=0, **kwargs)
    else:
        overlay = {"state_dict": dict(state_dict), "source": "timm", "file": None}
        try:
            with _timm_load_report() as report:
                model = timm.create_model(
                    spec.arch, pretrained=True, num_classes=0,
                    pretrained_cfg_overlay=overlay, **kwargs,
                )  # fmt: skip
        except RuntimeError as exc:  # strict loading (cfg num_classes == 0): keys or shapes
            raise _bad_fit(spec, *_torch_load_error(str(exc))) from None
        missing, unexpected = _timm_load_log(report)
        if missing or unexpected:
            raise _bad_fit(spec, missing, unexpected)
    cfg = {k: v for k, v in dict(model.pretrained_cfg).items() if k != "state_dict"}
    embedder = Embedder(model, spec.recipe).eval()
    for p in embedder.parameters():
        p.requires_grad_(False)
    return embedder, cfg


def timm_weights(spec: BackboneSpec) -> WeightsSource | None:
    """A url-only timm pretrained cfg as a WeightsSource (torch hub cache / download)."""
    cfg = spec.pretrained_cfg or {}
    url = cfg.get("url")
    if spec.hub_id or not url:
        return None
    return WeightsSource(url=url, filename=url.rsplit("/", 1)[-1])

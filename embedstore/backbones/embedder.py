"""The torch modules that turn a built model into an embedding model: ``Embedder`` (a timm model
read with a recipe, ``recipes.py``) and ``OpenClipTower`` (open_clip's timm image tower,
``hf_models.py``). Kept apart so that the registry, recipes and listing import no torch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from embedstore.backbones.recipes import parse_recipe
from embedstore.errors import InvalidDataError

__all__ = ["Embedder", "OpenClipTower"]


class Embedder(nn.Module):
    """A timm model read with a recipe: ``forward`` maps (B, 3, H, W) -> (B, dim)."""

    def __init__(self, model: nn.Module, recipe: str) -> None:
        super().__init__()
        # A timm model: forward_features / forward_intermediates are timm's, not nn.Module's.
        self.model: Any = model
        self.recipe = recipe
        self.kind, self.n = parse_recipe(recipe)
        prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
        if self.kind in ("cls", "cls_mean", "last") and prefix < 1:
            raise InvalidDataError(
                f"recipe '{recipe}' reads a class token, but {type(model).__name__} has none; "
                "use 'pooled', 'mean' (token models) or 'gap' (CNNs)"
            )
        if self.kind == "last" and not hasattr(model, "forward_intermediates"):
            raise InvalidDataError(
                f"recipe '{recipe}' needs timm's forward_intermediates, which "
                f"{type(model).__name__} lacks; use 'cls' or 'pooled'"
            )
        self.num_prefix_tokens = prefix

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(x)
        if tokens.ndim != 3:
            raise InvalidDataError(
                f"recipe '{self.recipe}' expects tokens (B, N, C) from forward_features, got shape "
                f"{tuple(tokens.shape)}; use 'gap' for a CNN"
            )
        return tokens  # (B, N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "pooled":
            return self.model(x)  # (B, D): timm's pre-logits with num_classes=0
        if self.kind == "gap":
            fmap = self.model.forward_features(x)
            if fmap.ndim != 4:
                raise InvalidDataError(
                    f"recipe 'gap' expects a feature map (B, C, H, W), got shape "
                    f"{tuple(fmap.shape)}; use 'mean' for a token model"
                )
            return fmap.mean(dim=(2, 3))  # (B, C)
        if self.kind == "last":
            outs = self.model.forward_intermediates(
                x, indices=self.n, return_prefix_tokens=True, norm=True,
                output_fmt="NLC", intermediates_only=True,
            )  # fmt: skip
            return torch.cat([prefix[:, 0] for _, prefix in outs], dim=-1)  # (B, N * C)
        tokens = self._tokens(x)
        cls = tokens[:, 0]  # (B, C)
        mean = tokens[:, self.num_prefix_tokens :].mean(dim=1)  # (B, C)
        if self.kind == "cls":
            return cls
        if self.kind == "mean":
            return mean
        return torch.cat([cls, mean], dim=-1)  # (B, 2C)


class OpenClipTower(nn.Module):
    """open_clip's ``TimmModel`` image tower with its key names (``trunk.*``, ``head.proj``),
    built without open_clip: (B, 3, H, W) -> (B, embed_dim)."""

    def __init__(self, model_name: str, embed_dim: int, pool: str = "avg", proj: str = "linear",
                 proj_bias: bool = False, **timm_kwargs: Any) -> None:  # fmt: skip
        super().__init__()
        import timm

        if pool in ("abs_attn", "rot_attn") or proj not in ("linear", "none", "", None):
            raise InvalidDataError(
                f"open_clip tower with pool={pool!r}, proj={proj!r} is not supported "
                "(linear or no projection, timm pooling only)"
            )
        self.trunk: Any  # a timm model: reset_classifier / num_features are timm's
        if proj == "linear":  # open_clip: trunk without classifier, then Dropout + Linear
            self.trunk = timm.create_model(model_name, pretrained=False, **timm_kwargs)
            self.trunk.reset_classifier(0, **({"global_pool": pool} if pool else {}))
            head = OrderedDict(drop=nn.Dropout(0.0), proj=nn.Linear(
                self.trunk.num_features, embed_dim, bias=proj_bias))  # fmt: skip
        else:  # open_clip: the trunk's own classifier projects (to 0 classes for 'none')
            self.trunk = timm.create_model(
                model_name, pretrained=False, num_classes=0 if proj == "none" else embed_dim,
                global_pool=pool, **timm_kwargs,
            )  # fmt: skip
            head = OrderedDict()
        self.head = nn.Sequential(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))

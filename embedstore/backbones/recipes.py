"""Named embedding recipes: which numbers of a backbone's forward pass are the embedding.

- ``pooled``: the model's own pre-logits output, timm's ``model(x)`` with ``num_classes=0``
  (class token for DINO ViTs and XCiT, global average pool for most CNNs);
- ``cls``: the class token after the final norm, ``forward_features(x)[:, 0]``;
- ``mean``: the mean of the patch tokens after the final norm (prefix tokens excluded);
- ``cls_mean``: ``cls`` and ``mean`` concatenated, the DINOv2 linear-probe input
  (facebookresearch/dinov2 ``eval/linear.py`` ``create_linear_input`` with ``use_avgpool``);
- ``last<N>`` (e.g. ``last4``): the class tokens of the last N blocks, each through the final
  norm, concatenated (DINO ``eval_linear.py`` ``get_intermediate_layers(x, n)``; DVME's choice);
- ``gap``: the spatial mean of a CNN's last feature map, ``forward_features(x).mean((2, 3))``.

A timm entry can be read with another recipe without a new entry: ``<name>@<recipe>``
(``timm_models.with_recipe``). The reading itself is ``embedder.Embedder`` (torch); this module
only names and parses recipes.
"""

from __future__ import annotations

import re

from embedstore.errors import InvalidDataError

__all__ = ["RECIPES", "parse_recipe", "split_recipe", "is_recipe"]

RECIPES = ("pooled", "cls", "mean", "cls_mean", "last<N>", "gap")
_LAST = re.compile(r"^last([1-9][0-9]?)$")


def parse_recipe(recipe: str) -> tuple[str, int]:
    """('last', 4) for 'last4'; (recipe, 1) for the others; InvalidDataError if unknown."""
    m = _LAST.match(recipe)
    if m:
        return "last", int(m.group(1))
    if recipe in RECIPES:
        return recipe, 1
    raise InvalidDataError(
        f"unknown embedding recipe {recipe!r}; expected one of {', '.join(RECIPES)} (e.g. 'last4')"
    )


def is_recipe(text: str) -> bool:
    """Whether ``text`` names a recipe (``parse_recipe`` accepts it)."""
    try:
        parse_recipe(text)
    except InvalidDataError:
        return False
    return True


def split_recipe(name: str) -> tuple[str, str | None]:
    """``'vit.dino@last4'`` -> ``('vit.dino', 'last4')``; a name without a recipe suffix (or
    with timm's ``@revision`` in ``hf-hub:org/repo@rev``) -> ``(name, None)``."""
    base, sep, tail = name.rpartition("@")
    if sep and base and is_recipe(tail):
        return base, tail
    return name, None

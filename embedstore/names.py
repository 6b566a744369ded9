"""Backbone names as store array names, shared by the backbones registry and the probes.

A store array name cannot contain ``/``, so a backbone named ``timm/<timm name>`` (or an
``hf-hub:org/repo`` timm name) is stored as ``timm--<...>``: every ``/`` becomes ``--`` (the
Hugging Face cache's spelling). Kept outside ``embedstore.backbones`` so that a probe can map a
name the user typed to its stored spelling without importing the backbones package, and every
command that takes ``-b`` / ``--fuse`` resolves a short name the same way
(:func:`resolve_backbone`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from embedstore.errors import ArrayNotFoundError, InvalidDataError

__all__ = ["TIMM_PREFIX", "resolve_backbone", "store_name"]

TIMM_PREFIX = "timm/"


def store_name(name: str) -> str:
    """The store-safe spelling of a backbone name: every ``/`` becomes ``--``."""
    return name.replace("/", "--")


def resolve_backbone(name: str, stored: Sequence[str], *, dataset: str = "") -> str:
    """The stored backbone array a user means by ``name``.

    The exact name; else the one stored name that ends in ``name`` (its tag) or starts with it
    (its architecture), at '.' (or '--') boundaries, with or without its ``@recipe``
    (``dino`` -> ``resnet50.dino`` or ``vit_small_patch16.dino@last4``; ``mobilenet_v2`` ->
    ``mobilenet_v2.tv_in1k``; parts are whole: ``patch16.dino`` matches neither); else an error
    that lists the candidates (several match) or the stored names (none does). A name with
    ``/`` (``timm/convnext_tiny.fb_in1k``) is matched in its stored spelling (``timm--…``).
    """
    if name in stored:
        return name
    if store_name(name) in stored:
        return store_name(name)
    parts = _name_parts(store_name(name))

    def matches(full: str) -> bool:  # a whole-part suffix (tag) or prefix (architecture)
        return any(
            len(p) > len(parts) and parts in (p[-len(parts) :], p[: len(parts)])
            for p in (_name_parts(full), _name_parts(full.split("@")[0]))
        )

    found = [b for b in stored if matches(b)]
    where = f" of dataset '{dataset}'" if dataset else ""
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidDataError(
            f"backbone '{name}' matches {len(found)} arrays{where}: {', '.join(found)}; "
            "give the full name of one"
        )
    close = difflib.get_close_matches(name, stored, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ArrayNotFoundError(
        f"backbone '{name}' is not an array{where}; {hint}(stored: {', '.join(stored) or 'none'}); "
        "give a stored name, or its tag or architecture (e.g. 'dino' or 'resnet50' for "
        "'resnet50.dino') when only one array has it; see `embedstore info STORE DATASET`"
    )


def _name_parts(name: str) -> list[str]:
    """'timm--convnext.fb_in1k' -> ['timm', 'convnext', 'fb_in1k'] ('--' is a stored '/')."""
    return re.split(r"\.|--", name)

"""Backbone names as store array names, shared by the backbones registry and the probes.

A store array name cannot contain ``/``, so a backbone named ``timm/<timm name>`` (or an
``hf-hub:org/repo`` timm name) is stored as ``timm--<...>``: every ``/`` becomes ``--`` (the
Hugging Face cache's spelling). Kept outside ``embedstore.backbones`` so that a probe can map a
name the user typed to its stored spelling without importing the backbones package.
"""

from __future__ import annotations

__all__ = ["TIMM_PREFIX", "store_name"]

TIMM_PREFIX = "timm/"


def store_name(name: str) -> str:
    """The store-safe spelling of a backbone name: every ``/`` becomes ``--``."""
    return name.replace("/", "--")

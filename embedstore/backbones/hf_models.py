"""Hugging Face models outside timm (``transformers``, ``open_clip``): optional extras."""

from __future__ import annotations

__all__ = ["hf_entries", "load_hf"]


def hf_entries() -> dict:
    return {}


def load_hf(spec, weights, unverified):  # pragma: no cover - filled in below
    raise NotImplementedError

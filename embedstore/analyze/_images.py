"""What the image analyses share with extraction: the dataset's images (through
``embedstore.data.open_source``) and its backbones (``embedstore.backbones.load_model`` with the
entry's own ``spec.preprocess``), checked against the embeddings already in the store.

Images -> backbone -> numbers, beside ``embedstore.extract``; nothing here imports a probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from embedstore import devices
from embedstore.analyze.records import backbone_provenance
from embedstore.backbones import LoadedBackbone, get_backbone, load_model
from embedstore.data import ImageTransform, Source
from embedstore.data.recorded import open_dataset_source
from embedstore.errors import InvalidDataError

__all__ = ["ImageBackbone", "open_dataset_source", "sample_rows", "resolve_device"]


def sample_rows(valid: np.ndarray, n_images: int, seed: int) -> np.ndarray:
    """``n_images`` store rows drawn without replacement from the valid ones (all when fewer),
    sorted; the same seed gives the same rows for every backbone."""
    if n_images < 1:
        raise InvalidDataError(f"the number of images must be >= 1, got {n_images}")
    rows = np.flatnonzero(valid)
    if len(rows) <= n_images:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=n_images, replace=False))


def resolve_device(device: str) -> torch.device:
    """The torch device for ``--device`` of the image analyses: the project's one check."""
    return torch.device(devices.resolve_device(device))


@dataclass
class ImageBackbone:
    """A loaded backbone with its own preprocessing, and the provenance of its stored array."""

    name: str
    loaded: LoadedBackbone
    transform: ImageTransform
    device: torch.device
    provenance: dict[str, Any]

    @classmethod
    def open(
        cls, store: Any, dataset: str, name: str, *, weights: str | None, device: torch.device
    ) -> ImageBackbone:
        info = store.array_info(dataset, name)  # raises if the backbone was never extracted
        spec = get_backbone(name)
        recorded = info.provenance.get("weights_path")
        if weights is None and recorded and Path(recorded).is_file():
            weights = recorded  # the very file the stored embeddings were made with
        loaded = load_model(spec, weights=weights)
        stored_sha = info.provenance.get("weights_sha256")
        if stored_sha and loaded.weights_sha256 and stored_sha != loaded.weights_sha256:
            raise InvalidDataError(
                f"'{name}' loaded weights with sha256 {loaded.weights_sha256[:12]}…, but its "
                f"embeddings in the store were made with {stored_sha[:12]}…; pass the same "
                f"checkpoint with --weights {name}=PATH"
            )
        loaded.model.to(device)
        provenance = backbone_provenance(info.provenance)
        provenance["weights_sha256_loaded"] = loaded.weights_sha256
        return cls(name, loaded, ImageTransform(spec.preprocess), device, provenance)

    @torch.inference_mode()
    def features(self, images: Sequence[torch.Tensor]) -> np.ndarray:
        """Preprocessed images (3, H, W) -> features, array of shape (n, dim) float64."""
        x = torch.stack(list(images)).to(self.device)
        return self.loaded.model(x).float().cpu().numpy().astype(np.float64)

    def check_against_store(
        self, store: Any, dataset: str, src: Source, rows: np.ndarray, src_index: np.ndarray
    ) -> float:
        """Recompute a few stored rows; the largest relative difference. Raises when the images,
        preprocessing or weights are evidently not those the store was extracted with."""
        rows = rows[:4]
        fresh = self.features([self.transform(load_rgb(src, int(src_index[r]))) for r in rows])
        stored = store.embeddings(dataset, self.name, rows=rows).astype(np.float64)
        scale = np.maximum(np.linalg.norm(stored, axis=1), 1e-12)
        diff = float(np.max(np.linalg.norm(fresh - stored, axis=1) / scale))
        if diff > 0.05:
            raise InvalidDataError(
                f"'{self.name}' recomputed on {len(rows)} images of '{dataset}' differs from "
                f"its stored embeddings by {diff:.0%} (relative L2): the images, preprocessing "
                "or weights are not the ones the store was extracted with; pass the source it "
                "was extracted from with --source, or its checkpoint with --weights"
            )
        return diff


def load_rgb(src: Source, index: int) -> Image.Image:
    """One decoded image of a source as an RGB PIL image (the decode extraction uses)."""
    return src.load_rgb(index)

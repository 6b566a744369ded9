"""MedMNIST-format ``.npz`` files: ``train_images`` / ``train_labels`` and optionally the same for
``val`` and ``test``; images (N, H, W) grey or (N, H, W, 3) RGB; labels (N, 1) or (N, L) multilabel.
Ids are "<split>/<index within split>", e.g. "train/0", "test/41".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedstore.data.base import ArraySource
from embedstore.errors import SourceError

__all__ = ["NpzSource"]

_SPLITS = ("train", "val", "test")


class NpzSource(ArraySource):
    """All splits of a MedMNIST-style ``.npz``, concatenated train, val, test.

    Args:
        path: the .npz file.
        class_names: names per class (MedMNIST's INFO ``label`` values); default "0".."K-1".
        task: override the inferred task, e.g. "ordinal" for RetinaMNIST; labels with more than
            one column are multilabel.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        class_names: Sequence[str] | None = None,
        task: str | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise SourceError(
                f".npz file '{path}' does not exist; pass the path of a MedMNIST .npz file"
            )
        try:
            data = np.load(path, allow_pickle=False)
            keys = set(data.files)
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot open '{path}' as an .npz file ({exc})") from None
        present = [s for s in _SPLITS if f"{s}_images" in keys or f"{s}_labels" in keys]
        if "train" not in present:
            raise SourceError(
                f".npz '{path}' has keys {sorted(keys)}; expected MedMNIST keys train_images and "
                "train_labels (and optionally val_images/val_labels, test_images/test_labels)"
            )
        images, labels, ids, split = [], [], [], []
        for code, s in enumerate(_SPLITS):
            if s not in present:
                continue
            for kind in ("images", "labels"):
                if f"{s}_{kind}" not in keys:
                    other = "labels" if kind == "images" else "images"
                    raise SourceError(
                        f".npz '{path}' has {s}_{other} but no "
                        f"{s}_{kind} (keys: {sorted(keys)}); each split needs both arrays"
                    )
            x, y = data[f"{s}_images"], data[f"{s}_labels"]
            if y.ndim == 1:
                y = y[:, None]
            if len(x) != len(y):
                raise SourceError(
                    f".npz '{path}': {s}_images has {len(x)} images but {s}_labels {len(y)} rows"
                )
            images.append(x)
            labels.append(y)
            ids += [f"{s}/{i}" for i in range(len(x))]
            split.append(np.full(len(x), code, dtype=np.uint8))
        shapes = {x.shape[1:] for x in images}
        if len(shapes) != 1:
            raise SourceError(f".npz '{path}': splits have different image shapes {sorted(shapes)}")
        y = np.concatenate(labels)
        if y.shape[1] == 1 and task != "multilabel":
            y = y[:, 0]
        super().__init__(
            np.concatenate(images),
            y,
            ids=ids,
            class_names=class_names,
            task=task,
            split=np.concatenate(split),
            description=f"MedMNIST npz {path}",
        )
        self.path = path

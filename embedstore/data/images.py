"""Reading one image file: ordinary formats through PIL, DICOM through pydicom (optional extra).

Every failure to read (missing, empty, truncated, undecodable) is a :class:`BadImageError` that
names the file, so the extractor can stop on it or record the row as missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from embedstore.errors import BadImageError, SourceError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DICOM_EXTENSIONS",
    "is_image_file",
    "read_image",
    "read_dicom",
    "require_pydicom",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
_SKIP_HINT = "fix or remove the file, or pass --skip-bad (skip_bad=True) to record it as missing"


def is_image_file(path: Path) -> bool:
    """True for a non-hidden file with an image or DICOM extension."""
    suffix = path.suffix.lower()
    return not path.name.startswith(".") and (
        suffix in IMAGE_EXTENSIONS or suffix in DICOM_EXTENSIONS
    )


def read_image(path: str | Path) -> Image.Image | np.ndarray:
    """Decode one file fully: a PIL image, or for DICOM a (H, W) uint8 array (windowed)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return read_dicom(path)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(f"image file '{path}' is empty (0 bytes); {_SKIP_HINT}")
        img = Image.open(path)
        img.load()  # decode now: a truncated file fails here, not later in a transform
    except BadImageError:
        raise
    except FileNotFoundError:
        raise BadImageError(f"image file '{path}' does not exist; {_SKIP_HINT}") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"cannot read image '{path}' ({exc}); {_SKIP_HINT}") from None
    if img.width == 0 or img.height == 0:
        raise BadImageError(f"image '{path}' has zero width or height; {_SKIP_HINT}")
    return img


def require_pydicom() -> Any:
    """Import pydicom, or explain how to install the optional extra."""
    try:
        import pydicom
    except ImportError:
        raise SourceError(
            "reading DICOM files needs pydicom, which is not installed; "
            "install it with `pip install 'embedstore[dicom]'` (or `pip install pydicom`)"
        ) from None
    return pydicom


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return (
            float(value[0])
            if hasattr(value, "__len__") and not isinstance(value, str)
            else float(value)
        )
    except (TypeError, ValueError, IndexError):
        return None


def read_dicom(path: str | Path) -> np.ndarray:
    """Read a single-frame DICOM as 8-bit grey, array of shape (H, W) uint8.

    Applies RescaleSlope / RescaleIntercept, then the file's first WindowCenter / WindowWidth
    (the linear DICOM window), or the image's own min..max when it has none; MONOCHROME1 is
    inverted so that bright means dense in every output. Colour DICOMs come back as (H, W, 3).
    """
    pydicom = require_pydicom()
    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
        pixels = ds.pixel_array
    except FileNotFoundError:
        raise BadImageError(f"DICOM file '{path}' does not exist; {_SKIP_HINT}") from None
    except Exception as exc:  # pydicom raises many types for broken files
        raise BadImageError(f"cannot read DICOM '{path}' ({exc}); {_SKIP_HINT}") from None
    if int(getattr(ds, "SamplesPerPixel", 1)) == 3:
        return np.asarray(pixels, dtype=np.uint8)
    if pixels.ndim != 2:
        raise BadImageError(
            f"DICOM '{path}' has pixel data of shape {pixels.shape}; only single-frame 2-D "
            f"images are supported; {_SKIP_HINT}"
        )
    slope = _first(getattr(ds, "RescaleSlope", None))
    intercept = _first(getattr(ds, "RescaleIntercept", None))
    values = pixels.astype(np.float64) * (1.0 if slope is None else slope)
    values += 0.0 if intercept is None else intercept
    center = _first(getattr(ds, "WindowCenter", None))
    width = _first(getattr(ds, "WindowWidth", None))
    if center is not None and width is not None and width > 0:
        lo, hi = center - width / 2.0, center + width / 2.0
    else:
        lo, hi = float(values.min()), float(values.max())
    scaled = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    out = np.round(scaled * 255.0).astype(np.uint8)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out

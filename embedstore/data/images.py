"""Reading one image: ordinary formats through PIL, DICOM through pydicom (optional extra), from a
local file, from bytes (a tar shard member), or from a URL (through :mod:`embedstore.data.remote`).

Every failure to read (missing, empty, truncated, undecodable, too many pixels) is a
:class:`BadImageError` that names the file, so the extractor can stop on it or record the row as
missing. :func:`to_rgb` turns whatever was decoded into the one form every backbone starts from.

Pixel limit: an image with more than :func:`max_image_pixels` pixels is refused before its pixels
are decoded (a decompression bomb: a small file that inflates to gigabytes). The default is
Pillow's own ``Image.MAX_IMAGE_PIXELS`` default, 89,478,485 pixels (about 9,459 x 9,459; 256 MiB
of RGB), where Pillow itself only warns; ``EMBEDSTORE_MAX_IMAGE_PIXELS`` raises or lowers it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from embedstore.data.remote import read_url
from embedstore.errors import BadImageError, SourceError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DICOM_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "decode_image",
    "is_image_file",
    "max_image_pixels",
    "read_image",
    "read_dicom",
    "require_pydicom",
    "to_rgb",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
# Pillow's default Image.MAX_IMAGE_PIXELS (PIL/Image.py: int(1024 * 1024 * 1024 // 4 // 3)).
MAX_IMAGE_PIXELS = 89_478_485


def is_image_file(path: Path) -> bool:
    """True for a non-hidden file with an image or DICOM extension."""
    suffix = path.suffix.lower()
    return not path.name.startswith(".") and (
        suffix in IMAGE_EXTENSIONS or suffix in DICOM_EXTENSIONS
    )


def max_image_pixels() -> int:
    """The largest width x height read: ``EMBEDSTORE_MAX_IMAGE_PIXELS`` or :data:`MAX_IMAGE_PIXELS`."""
    text = os.environ.get("EMBEDSTORE_MAX_IMAGE_PIXELS", "").strip()
    if not text:
        return MAX_IMAGE_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise SourceError(
            f"EMBEDSTORE_MAX_IMAGE_PIXELS must be a positive integer (pixels), got '{text}'"
        )
    return value


def _check_pixels(width: int, height: int, name: str) -> None:
    limit = max_image_pixels()
    if width * height > limit:
        raise BadImageError(
            f"image '{name}' is {width} x {height} = {width * height:,} pixels, over the limit of "
            f"{limit:,} (a decompression-bomb guard); downscale it, or raise the limit with "
            f"EMBEDSTORE_MAX_IMAGE_PIXELS",
            hint="or " + BadImageError.HINT,
        )


def _open_pil(fp: str | Path | IO[bytes], name: str) -> Image.Image:
    """Open, check the size from the header alone, then decode fully (truncation fails here)."""
    limit = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # a raised limit must not be refused by Pillow's own guard
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
            _check_pixels(img.width, img.height, name)
            img.load()
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(
            f"image '{name}' is too large to decode safely ({exc}); downscale it, or raise the "
            f"limit with EMBEDSTORE_MAX_IMAGE_PIXELS",
            hint="or " + BadImageError.HINT,
        ) from None
    except FileNotFoundError:
        raise BadImageError(f"image file '{name}' does not exist") from None
    except UnidentifiedImageError:
        raise BadImageError(
            f"'{name}' is not an image Pillow can read (the file's bytes match no image format; "
            f"is it text or another kind of file with an image name?)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(f"cannot read image '{name}' ({exc})") from None
    if img.width == 0 or img.height == 0:
        raise BadImageError(f"image '{name}' has zero width or height")
    return img


def decode_image(data: bytes, name: str, *, suffix: str | None = None) -> Image.Image | np.ndarray:
    """Decode an image held in memory (a tar member, a downloaded file), named ``name`` in
    messages. DICOM is recognised by ``suffix`` (default: ``name``'s extension) or by the
    "DICM" marker of a DICOM file."""
    if len(data) == 0:
        raise BadImageError(f"image '{name}' is empty (0 bytes)")
    suffix = (suffix if suffix is not None else Path(name).suffix).lower()
    if suffix in DICOM_EXTENSIONS or data[128:132] == b"DICM":
        return read_dicom(io.BytesIO(data), name=name)
    return _open_pil(io.BytesIO(data), name)


def read_image(path: str | Path) -> Image.Image | np.ndarray:
    """Decode one file fully: a PIL image, or for DICOM a (H, W) uint8 array (windowed).

    ``path`` may also be an ``s3://``, ``https://`` or ``http://`` URL (read through fsspec).
    """
    text = str(path)
    if "://" in text:
        return decode_image(read_url(text), text)
    path = Path(path)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return read_dicom(path)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(f"image file '{path}' is empty (0 bytes)")
    except FileNotFoundError:
        raise BadImageError(f"image file '{path}' does not exist") from None
    return _open_pil(path, str(path))


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


def read_dicom(path: str | Path | IO[bytes], *, name: str | None = None) -> np.ndarray:
    """Read a single-frame DICOM as 8-bit grey, array of shape (H, W) uint8.

    Applies RescaleSlope / RescaleIntercept, then the file's first WindowCenter / WindowWidth
    (the linear DICOM window), or the image's own min..max when it has none; MONOCHROME1 is
    inverted so that bright means dense in every output. Colour DICOMs come back as (H, W, 3).
    ``path`` may be a file object (bytes from a tar shard or a URL), named by ``name``.

    A multi-frame file (NumberOfFrames > 1: a CT/MR series, a cine loop) is refused with
    :class:`BadImageError` before its pixels are decoded, grey or colour alike: one row is one
    image, and which frame stands for the file is the user's choice (split the file into one
    file per frame first). pydicom's warnings about a file (a non-standard header it reads
    anyway) are not shown: what matters reaches the user as this function's result or error.
    """
    pydicom = require_pydicom()
    name = name or str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path if not isinstance(path, Path) else str(path))
            _check_pixels(int(getattr(ds, "Columns", 0)), int(getattr(ds, "Rows", 0)), name)
            frames = _frames(ds)
            if frames > 1:
                raise BadImageError(
                    f"DICOM '{name}' holds {frames} frames; embedstore reads one image per "
                    "file (one row each): split it into one file per frame, or pass --skip-bad "
                    "to record it as missing"
                )
            pixels = ds.pixel_array
    except BadImageError:
        raise
    except FileNotFoundError:
        raise BadImageError(f"DICOM file '{name}' does not exist") from None
    except Exception as exc:  # pydicom raises many types for broken files
        why = " ".join(str(exc).split())  # pydicom lists every decoder on its own line
        raise BadImageError(f"cannot read DICOM '{name}' ({why})") from None
    if int(getattr(ds, "SamplesPerPixel", 1)) == 3:
        return np.asarray(pixels, dtype=np.uint8)
    if pixels.ndim != 2:  # NumberOfFrames missing but the pixels say otherwise
        raise BadImageError(
            f"DICOM '{name}' has pixel data of shape {pixels.shape}; embedstore reads one 2-D "
            f"image per file"
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


def _frames(ds: Any) -> int:
    """The file's NumberOfFrames (1 when absent or unreadable)."""
    try:
        return max(1, int(getattr(ds, "NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Non-8-bit grey or colour (16-bit PNG, float) -> uint8 by the image's own min..max."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise BadImageError("image contains NaN or Inf pixel values")
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((values - lo) / (hi - lo) * 255.0).astype(np.uint8)


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """Any PIL image or array (H, W), (H, W, 1), (H, W, 3), (H, W, 4) -> an RGB PIL image.

    Grey becomes three equal channels, alpha is dropped (as torchvision's ImageFolder loader's
    ``convert("RGB")`` does), palettes are expanded, CMYK is converted by Pillow, and images that
    are not 8-bit (16-bit grey, 32-bit integer or float) are scaled to 8 bits by their own min..max.
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
            raise BadImageError(
                f"an image array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                f"got {arr.shape}"
            )
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise BadImageError(f"image array is empty, shape {arr.shape}")
        arr = np.ascontiguousarray(_to_uint8(arr))
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(arr[..., :3]), mode="RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return to_rgb(np.asarray(image))
    if image.mode != "RGB":
        try:
            return image.convert("RGB")
        except (ValueError, OSError) as exc:
            raise BadImageError(
                f"cannot convert an image of mode '{image.mode}' to RGB ({exc})"
            ) from None
    return image

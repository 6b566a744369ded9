"""Text in a store as a Zarr v3 *core* data type: zero-padded UTF-8 bytes in a uint8 array.

The Zarr v3 core specification defines bool, (u)int8-64, float16/32/64, complex64/128 and raw
bits ``r<N>``; ``string`` (variable-length UTF-8) and ``fixed_length_utf32`` are extensions that
readers supporting only the core refuse. A text column of N values is therefore stored as a
uint8 array of shape (N, L): row i holds value i encoded as UTF-8, zero-padded to L bytes, where L
is the longest encoding (at least 1). uint8 rather than ``r<8L>`` because every Zarr
implementation (and NumPy, xarray, TensorStore) reads uint8, while raw-bits support is rare;
UTF-8 rather than UTF-32 because ids are mostly ASCII paths (a quarter of the bytes, and the
padding compresses away). Values may not contain NUL (U+0000): it is the padding.

Format 1 stores (embedstore 0.1) used the ``string`` extension type; :func:`read_text` reads both.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from embedstore.errors import InvalidDataError

TEXT_ENCODING = "utf-8, zero-padded to a fixed width (uint8 array of shape (n, width))"
REASON_BYTES = 240  # missing_reason width: longer reasons are cut at a character boundary


def encode_text(values: Iterable[str], what: str, width: int | None = None) -> np.ndarray:
    """Encode strings as a uint8 array of shape (n, width) (width: the longest, at least 1).

    With ``width`` given, longer values are cut at a UTF-8 character boundary and end in '…'.
    """
    encoded = [str(v).encode("utf-8") for v in values]
    bad = [i for i, b in enumerate(encoded) if b"\0" in b]
    if bad:
        raise InvalidDataError(
            f"{what} must not contain the NUL character (U+0000); row(s) {bad[:10]} do"
        )
    if width is None:
        width = max([1, *map(len, encoded)])
    else:
        encoded = [b if len(b) <= width else _cut(b, width) for b in encoded]
    out = np.zeros((len(encoded), width), dtype=np.uint8)
    if encoded:
        flat = np.frombuffer(b"".join(b.ljust(width, b"\0") for b in encoded), dtype=np.uint8)
        out[...] = flat.reshape(len(encoded), width)
    return out


def _cut(b: bytes, width: int) -> bytes:
    ellipsis = "…".encode()
    head = b[: max(0, width - len(ellipsis))].decode("utf-8", errors="ignore").encode()
    return head + ellipsis


def decode_text(arr: np.ndarray) -> np.ndarray:
    """A uint8 array of shape (n, width) back to strings, array of shape (n,) of str."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim != 2:
        raise InvalidDataError(f"encoded text must be 2-D (n, width), got shape {arr.shape}")
    if arr.shape[0] == 0:
        return np.array([], dtype=str)
    fixed = arr.view(f"S{arr.shape[1]}").ravel()  # numpy drops the trailing NUL padding
    return np.char.decode(fixed, "utf-8").astype(str)


def read_text(values: np.ndarray) -> np.ndarray:
    """What a text array holds, as (n,) str: a format-2 uint8 (n, width) array or a format-1
    ``string`` array (numpy StringDType / object)."""
    if values.dtype == np.uint8 and values.ndim == 2:
        return decode_text(values)
    return np.array(values.tolist(), dtype=str)


def is_legacy_text(dtype: np.dtype) -> bool:
    """True for the format-1 ``string`` representation (not a core data type)."""
    return np.dtype(dtype).kind in "OUST"

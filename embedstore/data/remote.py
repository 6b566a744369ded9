"""Images and manifests at URLs (``s3://``, ``https://``, ``http://``), read through fsspec (the
``remote`` extra: ``pip install 'embedstore[remote]'``).

Credentials and endpoints come from the environment only, never from the command line: the usual
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_PROFILE`` (read by botocore), and
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (the AWS CLI's variables) for an S3-compatible
server such as MinIO, Ceph or moto. fsspec keeps one filesystem per process (it starts afresh in
each loader worker process), so reading a row costs one GET.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from embedstore.errors import BadImageError, SourceError

__all__ = [
    "REMOTE_SCHEMES",
    "is_url",
    "join_url",
    "read_url",
    "read_url_text",
    "storage_options",
]

REMOTE_SCHEMES = ("s3", "https", "http")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_url(text: str) -> bool:
    """True for 'scheme://...' (any scheme; :func:`read_url` says which are supported)."""
    return _URL.match(str(text)) is not None


def join_url(base: str, path: str) -> str:
    """A path written in a manifest at URL ``base``: a URL stays, a relative path joins the
    manifest's folder ("s3://b/d/m.csv" + "x/1.png" -> "s3://b/d/x/1.png")."""
    if is_url(path):
        return path
    scheme, rest = base.split("://", 1)
    folder = posixpath.dirname(rest)
    return f"{scheme}://{posixpath.normpath(posixpath.join(folder, path))}"


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: an S3 endpoint from ``AWS_ENDPOINT_URL(_S3)`` where set."""
    if url.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def _filesystem(url: str) -> tuple[Any, str]:
    scheme = url.split("://", 1)[0].lower()
    if scheme not in REMOTE_SCHEMES:
        raise SourceError(
            f"cannot read '{url}': URL scheme '{scheme}' is not supported; use one of "
            f"{', '.join(s + '://' for s in REMOTE_SCHEMES)}, or a local path"
        )
    try:
        from fsspec.core import url_to_fs

        return url_to_fs(url, **storage_options(url))
    except ImportError as exc:
        raise SourceError(
            f"reading '{url}' needs fsspec and its {scheme} backend ({exc.name or exc}); install "
            "them with `pip install 'embedstore[remote]'`"
        ) from None


def read_url(url: str, *, what: str = "image", error: type[Exception] = BadImageError) -> bytes:
    """The bytes at ``url``; a missing object or a failed request is ``error`` naming the URL."""
    fs, path = _filesystem(url)
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        raise error(f"{what} '{url}' does not exist") from None
    except Exception as exc:  # network, permission and server errors come in many types
        raise error(
            f"cannot fetch {what} '{url}' ({type(exc).__name__}: {exc}); check the URL, the "
            f"network, and the credentials / endpoint in the environment (AWS_*, "
            f"AWS_ENDPOINT_URL)"
        ) from None


def read_url_text(url: str) -> str:
    """A manifest at ``url`` as text (UTF-8, a byte-order mark dropped); errors are SourceErrors."""
    data = read_url(url, what="manifest", error=SourceError)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"manifest '{url}' is not UTF-8 text ({exc})") from None

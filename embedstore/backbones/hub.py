"""Hugging Face hub files for backbones: resolution through ``huggingface_hub`` (which honours
``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_TOKEN``) and one clear error for each
way it fails: offline with nothing cached, a gated repo without access, an unknown repo or file.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from embedstore.errors import WeightsNotFoundError

__all__ = [
    "hub_errors",
    "hub_file",
    "hub_cached",
    "hub_cache_dir",
    "hub_unreachable",
    "WEIGHT_FILES",
]

# The files timm tries, in its order (timm/models/_hub.py load_state_dict_from_hf and
# _get_safe_alternatives): safetensors first, then the pickled file.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def hub_cache_dir() -> str:
    """Where huggingface_hub caches repos on this machine (``HF_HUB_CACHE`` or ``HF_HOME/hub``)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@contextmanager
def hub_errors(repo_id: str | None, filename: str, name: str) -> Iterator[None]:
    """Turn huggingface_hub's exceptions for ``repo_id`` into one WeightsNotFoundError each."""
    if repo_id is None:
        yield
        return
    from huggingface_hub import errors as hf

    flag = f"--weights {name}=PATH"
    url = f"https://huggingface.co/{repo_id}"
    try:
        yield
    except hf.GatedRepoError:
        raise WeightsNotFoundError(
            f"'{repo_id}' is a gated model on the Hugging Face hub: accept its terms at {url}, "
            "then log in with `huggingface-cli login` (or set HF_TOKEN) and run again; or pass "
            f"a local file with {flag}"
        ) from None
    except hf.RepositoryNotFoundError:
        raise WeightsNotFoundError(
            f"Hugging Face repo '{repo_id}' was not found (or is private): check the name at "
            f"{url}; for a private repo log in with `huggingface-cli login` (or set HF_TOKEN)"
        ) from None
    except (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled, ConnectionError, OSError) as exc:
        if isinstance(exc, hf.RemoteEntryNotFoundError):
            raise WeightsNotFoundError(
                f"Hugging Face repo '{repo_id}' has no file '{filename}'; expected a timm / "
                f"transformers model repo ({url})"
            ) from None
        if isinstance(exc, hf.HfHubHTTPError) and not isinstance(exc, hf.LocalEntryNotFoundError):
            raise WeightsNotFoundError(
                f"the Hugging Face hub refused '{repo_id}/{filename}': {str(exc).splitlines()[0]}"
            ) from None
        why = "HF_HUB_OFFLINE is set" if _offline() else "the hub cannot be reached"
        raise _not_cached(repo_id, filename, name, why) from None


def _not_cached(repo_id: str, filename: str, name: str, why: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"'{repo_id}/{filename}' is needed for '{name}' but is not in the Hugging Face cache "
        f"({hub_cache_dir()}) and {why}. On a machine online run `huggingface-cli download "
        f"{repo_id}` (set HF_HOME to choose the cache; copy it here), or pass "
        f"--weights {name}=PATH"
    )


_PROBE_TIMEOUT_S = 3.0
_reachable: dict[str, str | None] = {}  # endpoint -> None (reachable) or why not, per process


def hub_unreachable() -> str | None:
    """Why the hub's endpoint cannot be reached (one TCP connection, at most 3 s), or None.

    Asked once per process before a download, so that a machine without network says so at once
    instead of after huggingface_hub's five retries (about a minute of "Retrying in Ns" lines).
    With a proxy configured (``HTTPS_PROXY`` / ``HTTP_PROXY``) the direct connection says
    nothing about the route the download takes: None, and huggingface_hub decides.
    """
    from urllib.parse import urlparse

    from huggingface_hub import constants

    endpoint = str(constants.ENDPOINT)
    if endpoint not in _reachable:
        url = urlparse(endpoint)
        host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
        proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                                                   "http_proxy", "ALL_PROXY", "all_proxy"))  # fmt: skip
        why = None
        if not proxied:
            try:
                socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
            except OSError as exc:
                why = f"the hub cannot be reached (no connection to {host}:{port}: {exc})"
        _reachable[endpoint] = why
    return _reachable[endpoint]


def hub_file(
    repo_id: str, filenames: Sequence[str] = WEIGHT_FILES, *, name: str, revision: str | None = None
) -> str:
    """Path of the first of ``filenames`` the repo has (cache first, then download)."""
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download

    repo, last = repo_id, filenames[-1]
    if not _offline():  # cached files answer without the network; else is there a network?
        from huggingface_hub import try_to_load_from_cache

        for filename in filenames:
            found = try_to_load_from_cache(repo, filename, revision=revision)
            if isinstance(found, str):
                return found
        why = hub_unreachable()
        if why is not None:
            raise _not_cached(repo_id, filenames[0], name, why)
    for filename in filenames:
        with hub_errors(repo_id, filename, name):
            try:
                return os.fspath(hf_hub_download(repo_id, filename, revision=revision))
            except hf.RemoteEntryNotFoundError:
                if filename == last:
                    raise
            except hf.LocalEntryNotFoundError:
                if filename == last:
                    raise
    raise AssertionError("unreachable")  # pragma: no cover


def hub_cached(repo_id: str, filenames: Sequence[str] = WEIGHT_FILES) -> bool:
    """True when one of ``filenames`` of ``repo_id`` is in the local cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = repo_id.partition("@")
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(found, str):
            return True
    return False

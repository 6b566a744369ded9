"""Weight resolution: explicit file > hub cache > installed package > download, sha256 checks,
and one clear error when nothing is found. No test touches the network: downloads go to a
closed port, or to an HTTP server on 127.0.0.1 started by the test."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest
import torch

from embedstore.backbones import WeightsSource
from embedstore.backbones.weights import (
    cached_file,
    package_file,
    read_checkpoint,
    resolve_weights,
    weights_available,
)
from embedstore.errors import CheckpointError, ChecksumError, WeightsNotFoundError


def _write(path, value: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.full((3,), value)}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An installed-looking package whose __init__ raises if anything imports it."""
    root = tmp_path / "site"
    pkg = root / "fake_weights_pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('weight packages must not be imported')\n")
    digest = _write(pkg / "models" / "tiny.pth", 3.0)
    monkeypatch.syspath_prepend(str(root))
    return digest


def _src(url, **kw) -> WeightsSource:
    return WeightsSource(
        url=url,
        filename="tiny.pth",
        package="fake_weights_pkg",
        package_path="fake_weights_pkg/models/tiny.pth",
        **kw,
    )


def _value(resolved) -> float:
    return float(read_checkpoint(resolved.path)["w"][0])


def test_resolution_order(tmp_path, hub_dir, fake_package, closed_url):
    src = _src(closed_url)
    assert _value(resolve_weights(src)) == 3.0  # only the package has it
    assert resolve_weights(src).origin == "package:fake_weights_pkg"
    assert weights_available(src)
    _write(hub_dir / "tiny.pth", 2.0)
    assert resolve_weights(src).origin == "hub-cache" and _value(resolve_weights(src)) == 2.0
    explicit = tmp_path / "mine.pth"
    _write(explicit, 1.0)
    got = resolve_weights(src, explicit)
    assert got.origin == "explicit" and got.path == str(explicit) and _value(got) == 1.0


def test_package_is_located_not_imported(fake_package):
    path = package_file(_src(None))
    assert path is not None and path.name == "tiny.pth"
    assert (
        package_file(
            WeightsSource(
                url=None, filename="x", package="no_such_pkg_zz", package_path="no_such_pkg_zz/x"
            )
        )
        is None
    )


def test_sha256_checked_everywhere(tmp_path, hub_dir, fake_package, closed_url):
    assert resolve_weights(_src(closed_url, sha256=fake_package)).sha256 == fake_package
    bad = _src(closed_url, sha256="0" * 64)
    with pytest.raises(ChecksumError, match=r"expected 0{64}, got [0-9a-f]{64}"):
        resolve_weights(bad)  # package file
    _write(hub_dir / "tiny.pth", 2.0)
    with pytest.raises(ChecksumError, match="tiny.pth"):
        resolve_weights(bad)  # hub cache file
    explicit = tmp_path / "e.pth"
    _write(explicit, 1.0)
    with pytest.raises(ChecksumError):
        resolve_weights(bad, explicit)


def test_torchvision_hash_prefix(tmp_path, closed_url):
    path = tmp_path / "f.pth"
    digest = _write(path, 1.0)
    src = WeightsSource(url=closed_url, filename="f.pth", sha256_prefix=digest[:8])
    assert resolve_weights(src, path).sha256 == digest
    wrong = WeightsSource(url=closed_url, filename="f.pth", sha256_prefix="deadbeef")
    with pytest.raises(ChecksumError, match="prefix"):
        resolve_weights(wrong, path)


def test_not_found_with_unreachable_url_is_one_clear_error(hub_dir, closed_url):
    src = WeightsSource(url=closed_url, filename="tiny.pth")
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(src, name="tiny.test")
    msg = str(info.value)
    assert "tiny.pth" in msg and closed_url in msg
    assert str(cached_file(src)) in msg and str(hub_dir) in msg
    assert "--weights tiny.test=PATH" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert not cached_file(src).exists()  # no half-written file left behind
    assert not weights_available(src)


def test_no_url_and_offline_mode(hub_dir, closed_url, monkeypatch):
    src = WeightsSource(url=None, filename="conv.pth", note="convert it with the converter")
    with pytest.raises(WeightsNotFoundError, match="convert it with the converter"):
        resolve_weights(src, name="x.y")
    monkeypatch.setenv("EMBEDSTORE_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="EMBEDSTORE_OFFLINE"):
        resolve_weights(WeightsSource(url=closed_url, filename="t.pth"), name="x.y")


def test_missing_explicit_file(tmp_path, closed_url):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_weights(WeightsSource(url=closed_url, filename="t.pth"), tmp_path / "nope.pth")


@pytest.fixture
def local_server(tmp_path):
    """A plain HTTP server on 127.0.0.1 serving tmp_path/served (loopback only)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_into_hub_cache_and_verify(hub_dir, local_server):
    served, base = local_server
    digest = _write(served / "tiny.pth", 5.0)
    got = resolve_weights(WeightsSource(url=f"{base}/tiny.pth", filename="tiny.pth", sha256=digest))
    assert got.origin == "download" and got.path == str(hub_dir / "tiny.pth")
    assert _value(got) == 5.0
    bad = WeightsSource(url=f"{base}/tiny.pth", filename="other.pth", sha256="1" * 64)
    with pytest.raises(ChecksumError):
        resolve_weights(bad)
    assert not (hub_dir / "other.pth").exists()  # a corrupt download is not kept


def test_read_checkpoint_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"obj": WeightsSource(url=None, filename="x")}, path)  # a class, not tensors
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_checkpoint(path)

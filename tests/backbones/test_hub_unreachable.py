"""No network: a hub file that is not cached is one error at once, not five "Retrying in Ns"
lines first (issue 23, item 3). The hub endpoint is a closed port on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from embedstore.backbones import hub
from embedstore.errors import WeightsNotFoundError

pytest.importorskip("huggingface_hub")


@pytest.fixture
def closed_endpoint(monkeypatch, tmp_path):
    """HF_HUB_CACHE empty, the endpoint a port nobody listens on, no proxy, online mode."""
    from huggingface_hub import constants

    with socket.socket() as s:  # a free port, closed again: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub, "_reachable", {})
    return port


def test_an_unreachable_hub_is_said_once(closed_endpoint, capfd, caplog):
    with pytest.raises(WeightsNotFoundError) as info:
        hub.hub_file("timm/resnet18.a1_in1k", name="timm/resnet18")
    message = str(info.value)
    assert f"the hub cannot be reached (no connection to 127.0.0.1:{closed_endpoint}" in message
    assert "huggingface-cli download timm/resnet18.a1_in1k" in message
    out, err = capfd.readouterr()
    assert "Retrying" not in out + err + caplog.text


def test_a_cached_file_is_used_without_asking_the_network(closed_endpoint, tmp_path):
    """The probe comes after the cache: offline with the file cached works as before."""
    from huggingface_hub import constants

    snap = tmp_path / "hub" / "models--org--repo" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")
    refs = tmp_path / "hub" / "models--org--repo" / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    assert constants.HF_HUB_CACHE == str(tmp_path / "hub")
    assert hub.hub_file("org/repo", name="org/repo") == str(snap / "model.safetensors")
    assert hub._reachable == {}  # never probed

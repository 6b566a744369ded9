"""timm models from a Hugging Face cache, offline, through the real CLI in a subprocess (so
``HF_HOME`` / ``HF_HUB_OFFLINE`` / ``HF_ENDPOINT`` are read the way a user sets them): loading by
name, ``timm/hf-hub:<org>/<repo>``, nothing cached, and a gated repo answered by a local HTTP
server that speaks the hub's gated-repo reply (huggingface_hub raises its own GatedRepoError)."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedstore import open_store

timm = pytest.importorskip("timm")
from timm.data import create_transform, resolve_model_data_config  # noqa: E402
from timm.models import save_for_hf  # noqa: E402

pytestmark = pytest.mark.slow  # runs the CLI in real processes

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_repo(hf_home: Path, repo_id: str) -> Path:
    """An HF hub cache entry as huggingface_hub lays it out: refs/main -> snapshots/<commit>/."""
    folder = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    if "HF_HUB_OFFLINE" not in env:
        full_env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-m", "embedstore.cli.main", *args],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=300,
    )  # fmt: skip


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "images"
    for i, (w, h) in enumerate([(180, 140), (90, 200), (160, 160)]):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _reference(model, root: Path, ids) -> np.ndarray:
    """timm's own transform and forward (pre-logits), image by image."""
    transform = create_transform(**resolve_model_data_config(model))
    with torch.no_grad():
        rows = [
            model.forward_head(
                model.forward_features(transform(Image.open(root / i).convert("RGB"))[None]),
                pre_logits=True,
            )[0].numpy()
            for i in ids
        ]
    return np.stack(rows)


def test_timm_names_load_offline_from_the_hf_cache(tmp_path, image_folder):
    hf_home = tmp_path / "hf"
    torch.manual_seed(21)
    vit = timm.create_model("test_vit.r160_in1k").eval()  # with its head, as timm publishes
    snapshot = _cache_repo(hf_home, "timm/test_vit.r160_in1k")
    from safetensors.torch import save_file

    save_file(vit.state_dict(), snapshot / "model.safetensors")
    vit_sha = hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest()
    torch.manual_seed(22)
    cnn = timm.create_model("test_efficientnet.r160_in1k", num_classes=0).eval()
    save_for_hf(cnn, _cache_repo(hf_home, "embedstore-test/tiny-cnn"), safe_serialization=True)
    store = tmp_path / "s.zarr"
    result = _cli(
        ["extract", str(store), "--dataset", "d", "--source", str(image_folder),
         "--backbone", "timm/test_vit.r160_in1k",
         "--backbone", "timm/hf-hub:embedstore-test/tiny-cnn",
         "--dtype", "float32", "--workers", "0", "--device", "cpu"],
        {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    opened = open_store(store)
    ids = opened.ids("d")
    assert set(opened.backbones("d")) == {
        "timm--test_vit.r160_in1k",
        "timm--hf-hub:embedstore-test--tiny-cnn",
    }
    got = opened.embeddings("d", "timm--test_vit.r160_in1k")
    np.testing.assert_allclose(got, _reference(vit, image_folder, ids), rtol=0, atol=1e-5)
    got = opened.embeddings("d", "timm--hf-hub:embedstore-test--tiny-cnn")
    np.testing.assert_allclose(got, _reference(cnn, image_folder, ids), rtol=0, atol=1e-5)
    prov = opened.array_info("d", "timm--test_vit.r160_in1k").provenance
    assert prov["weights_sha256"] == vit_sha and prov["weights_verified"] is False
    assert prov["weights_origin"] == "hf-hub:timm/test_vit.r160_in1k"
    assert prov["backbone"]["arch"] == "test_vit.r160_in1k"
    assert prov["backbone"]["recipe"] == "pooled"
    assert prov["timm_pretrained_cfg_used"]["hf_hub_id"] == "timm/test_vit.r160_in1k"


def test_offline_with_nothing_cached_is_one_clear_error(tmp_path, image_folder):
    result = _cli(
        ["extract", str(tmp_path / "s.zarr"), "--dataset", "d", "--source", str(image_folder),
         "--backbone", "timm/test_vit.r160_in1k", "--workers", "0"],
        {"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 1
    # the last line: the tiny folder's classes draw a warning about the splits first
    err = " ".join(result.stderr.strip().splitlines()[-1].split())
    assert "Traceback" not in result.stderr and err.startswith("error:")
    assert "not in the Hugging Face cache" in err and "HF_HUB_OFFLINE is set" in err
    assert "huggingface-cli download timm/test_vit.r160_in1k" in err
    assert str(tmp_path / "empty") in err and "--weights timm--test_vit.r160_in1k=PATH" in err


class _GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers every request as huggingface.co answers one for a gated repo without access."""

    def _gated(self) -> None:
        body = b'{"error": "Access to model gated-org/gated-model is restricted."}'
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model gated-org/gated-model is restricted.")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _gated

    def log_message(self, *args) -> None:
        pass


def test_gated_model_says_gated_and_how_to_log_in(tmp_path, image_folder):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = _cli(
            ["extract", str(tmp_path / "s.zarr"), "--dataset", "d", "--source",
             str(image_folder), "--backbone", "timm/hf-hub:gated-org/gated-model"],
            {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
             "HF_TOKEN": ""},
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1, result.stderr
    err = " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert "'gated-org/gated-model' is a gated model" in err
    assert "huggingface-cli login" in err and "HF_TOKEN" in err
    assert not (tmp_path / "s.zarr").exists() or not any((tmp_path / "s.zarr").glob("d/timm*"))

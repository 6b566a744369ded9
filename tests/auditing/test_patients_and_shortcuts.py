"""Patients in two splits, shortcuts read from a drawn border, attribute columns in the store, and
the `embedstore audit` command (CliRunner, the real command)."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import embedstore
from embedstore.cli.main import app
from embedstore.data import open_source
from embedstore.errors import EmbedstoreError, SourceError
from embedstore.store import meta_names, open_store, read_meta, write_meta
from tests.conftest import write_embeddings

runner = CliRunner()


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def test_patient_in_train_and_test_is_listed(digits_csv, tmp_path):
    store_path, csv_path, _, _ = digits_csv
    rows = _rows(csv_path)
    # the CSV's split column puts one image of patient p000 in train, the other in test
    first, second = [i for i, r in enumerate(rows) if r["patient"] == "p000"]
    rows[first]["split"], rows[second]["split"] = "train", "test"
    leaky = tmp_path / "leaky.csv"
    with open(leaky, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(SourceError, match="more than one split"):  # extraction refuses it...
        open_source(str(leaky), split_column="split", group_column="patient")
    # ...a store filled another way (embedstore add, an old store) is audited
    src = open_store(store_path)
    (name,) = src.backbones("digits")
    st = embedstore.create_store(tmp_path / "leaky.zarr")
    st.add_dataset("d", ids=[r["path"] for r in rows], labels=[int(r["label"]) for r in rows],
                   split=[r["split"] for r in rows], task="multiclass",
                   class_names=[str(c) for c in range(10)],
                   group=[r["patient"] for r in rows])  # fmt: skip
    write_embeddings(st, "d", name, src.embeddings("digits", name))
    result = embedstore.audit(st, "d")
    (overlap,) = result.patients
    assert overlap.group == "p000" and overlap.splits == ("train", "test")
    assert overlap.ids == {"train": [rows[first]["path"]], "test": [rows[second]["path"]]}
    assert not result.splits_by_embedstore


def test_meta_columns_are_stored_as_core_text_arrays(digits_csv):
    store_path, csv_path, _, _ = digits_csv
    s = open_store(store_path)
    assert meta_names(s, "digits") == ["rand", "site"]
    rows = _rows(csv_path)
    assert read_meta(s, "digits", "site").tolist() == [r["site"] for r in rows]
    arr = s.zarr_group["digits"]["meta.site"]
    assert arr.dtype == np.uint8 and arr.ndim == 2
    with pytest.raises(EmbedstoreError, match="no attribute column 'scanner'.*--meta-column"):
        read_meta(s, "digits", "scanner")


def test_meta_write_is_idempotent_and_checks_length(tmp_path):
    st = embedstore.create_store(tmp_path / "m.zarr")
    st.add_dataset("d", ids=["a", "b", "c"], labels=[0, 1, 0], split=[0, 0, 2], task="binary",
                   class_names=["x", "y"])  # fmt: skip
    write_meta(st, "d", {"age": [40, 51, 62]})
    write_meta(st, "d", {"age": [40, 51, 62]})
    assert read_meta(st, "d", "age").tolist() == ["40", "51", "62"]
    with pytest.raises(EmbedstoreError, match=r"one value per sample, shape \(3,\)"):
        write_meta(st, "d", {"age": [1, 2]})
    assert read_meta(st, "d", "age").tolist() == ["40", "51", "62"]  # nothing damaged
    assert st.backbones("d") == []  # an attribute is not a backbone


def test_tar_source_reads_meta_from_json(tmp_path):
    from PIL import Image

    shard = tmp_path / "s-000.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(6):
            img = tmp_path / f"{i}.png"
            Image.fromarray(np.full((8, 8, 3), i * 30, np.uint8)).save(img)
            tar.add(img, arcname=f"k{i}.png")
            meta = tmp_path / f"{i}.json"
            meta.write_text(json.dumps({"label": i % 2, "site": f"s{i % 3}"}))
            tar.add(meta, arcname=f"k{i}.json")
    src = open_source(str(shard), meta_columns=["site"])
    assert src.meta["site"].tolist() == [f"s{i % 3}" for i in range(6)]
    with pytest.raises(SourceError, match="has no 'scanner' in its <key>.json"):
        open_source(str(shard), meta_columns=["scanner"])
    folder = tmp_path / "folder"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / c / "x.png")
    with pytest.raises(SourceError, match="--meta-column site needs a CSV manifest or tar"):
        open_source(str(folder), meta_columns=["site"])


def test_cli_audit_flags_the_border_site_not_a_random_attribute(digits_csv, tmp_path):
    store_path = digits_csv[0]
    out = tmp_path / "audit.jsonl"
    res = runner.invoke(app, ["audit", str(store_path), "-d", "digits", "--meta", "site",
                              "--meta", "rand", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "SHORTCUT" in res.output and "suspected label errors" in res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["kind"] == "summary"
    short = {r["attribute"]: r for r in records if r["kind"] == "shortcut"}
    assert short["site"]["flagged"] and short["site"]["balanced_accuracy"]["ci_low"] > 0.9
    assert not short["rand"]["reads_attribute"] and not short["rand"]["flagged"]
    assert short["rand"]["balanced_accuracy"]["ci_low"] < 0.5 + 0.25
    assert records[0]["counts"]["patients_in_several_splits"] == 0
    assert any(r["kind"] == "label_issue" for r in records)


def test_cli_bad_input_is_one_clear_error(digits_csv):
    store_path = digits_csv[0]
    for args, message in (
        (["--meta", "scanner"], "no attribute column 'scanner'"),
        (["-b", "resnet50.dino"], "has not been extracted"),
        (["--search", "hnsw"], "search method must be one of"),
        (["--k-mad", "0"], "k_mad must be positive"),
    ):
        res = runner.invoke(app, ["audit", str(store_path), "-d", "digits", *args])
        assert res.exit_code == 1, res.output
        assert message in res.output and "Traceback" not in res.output


def test_cli_extract_meta_column(digits_csv, tmp_path):
    from tests.extraction.helpers import TINY, register_tiny, unregister_tiny

    _, csv_path, _, _ = digits_csv
    register_tiny()
    try:
        args = ["extract", str(tmp_path / "t.zarr"), "-d", "d", "--source", str(csv_path),
                "--backbone", TINY, "--split-column", "split", "--group-column", "patient",
                "--meta-column", "site", "--meta-column", "rand", "--workers", "0"]  # fmt: skip
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        bad = runner.invoke(app, [*args[:-4], "--meta-column", "hospital", "--workers", "0"])
        assert bad.exit_code == 1 and "no column 'hospital'" in bad.output
    finally:
        unregister_tiny()
    s = open_store(tmp_path / "t.zarr")
    assert read_meta(s, "d", "rand").tolist() == [r["rand"] for r in _rows(csv_path)]


def test_patient_overlap_matches_a_brute_force_scan():
    from embedstore.auditing.patients import patients_in_several_splits

    rng = np.random.default_rng(0)
    group = np.array([f"p{i}" for i in rng.integers(0, 60, 400)])
    split = rng.integers(0, 3, 400).astype(np.uint8)
    ids = np.array([f"r{i}" for i in range(400)])
    ref = {}
    for name in np.unique(group):
        rows = np.flatnonzero(group == name)
        codes = sorted(set(split[rows].tolist()))
        if len(codes) > 1:
            names = ("train", "val", "test")
            ref[name] = {names[c]: [ids[r] for r in rows if split[r] == c] for c in codes}
    found = patients_in_several_splits(group, split, ids)
    assert {o.group: o.ids for o in found} == ref and len(ref) > 0

"""Fixtures for the interop tests: a store with a dataset, and files written by the real
libraries (numpy, h5py, pyarrow, torch) in each layout ``embedstore add`` reads."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from embedstore import create_store
from tests.conftest import make_dataset

N, DIM = 40, 8


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts real processes (deselect with -m 'not slow')")


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under a store folder, by relative path: 'byte-identical' checks."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def store(tmp_path):
    """(store, ids, X): a 40-sample binary dataset 'toy' and the float32 array to import."""
    s = create_store(tmp_path / "s.zarr")
    ids, _, _ = make_dataset(s, n=N)
    X = np.random.default_rng(7).normal(size=(N, DIM)).astype(np.float32)
    return s, ids, X


@pytest.fixture
def shuffled(store):
    """(store, ids, X, perm): the file rows in a shuffled order, ids[perm] beside X[perm]."""
    s, ids, X = store
    perm = np.random.default_rng(3).permutation(N)
    return s, ids, X, perm


def write_eva(folder: Path, ids, X, targets, splits, as_list: bool = True) -> Path:
    """kaiko-ai/eva's offline layout: manifest.csv (origin, embeddings, target, split) and one
    .pt per row holding [tensor (1, dim)] as eva's classification writer saves it."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["origin", "embeddings", "target", "split"])
        for i, (sid, t, sp) in enumerate(zip(ids, targets, splits, strict=True)):
            save = f"emb/{Path(sid).stem}.pt"
            (folder / "emb").mkdir(exist_ok=True)
            x = torch.from_numpy(X[i].copy())
            torch.save([x.reshape(1, -1)] if as_list else x, folder / save)
            w.writerow([sid, save, int(t), sp])
    return folder

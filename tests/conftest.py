"""Shared fixtures: small seeded stores written through the real store API."""

from __future__ import annotations

import os

# The CLI's consoles read the terminal width once, when embedstore.cli._common is first imported;
# one fixed width for the whole session keeps every table test independent of which test (or
# which xdist worker) imported the CLI first.
os.environ["COLUMNS"] = "400"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from embedstore import create_store  # noqa: E402
from embedstore.testing.toy import make_dataset, write_embeddings  # noqa: E402


@pytest.fixture
def toy_store(tmp_path):
    """A store with one binary dataset of 40 rows and one complete 8-d float32 backbone."""
    store = create_store(tmp_path / "toy.zarr")
    make_dataset(store)
    X = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    write_embeddings(store, "toy", "bb", X, chunk_rows=16)
    return store, X


def pytest_configure(config):
    """The `slow` marker: `make test-fast` (-m "not slow") leaves these out."""
    config.addinivalue_line(
        "markers",
        "slow: starts real processes (CLI subprocesses, torchrun, kills), S3 servers or browsers; "
        "left out by `make test-fast`",
    )

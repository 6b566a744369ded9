"""CSV manifests whose image paths are URLs, against real servers on 127.0.0.1: S3 through a moto
server (the real S3 API), https-style URLs through the standard library's http.server. Rows,
pixels and embeddings must equal those of the same images in a local folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.data import CsvSource, ImageFolderSource, open_source
from embedstore.errors import BadImageError
from embedstore.extraction import extract
from tests.data.conftest import TINY, mixed_folder
from tests.store.servers import moto_s3, serve_folder

pytestmark = pytest.mark.slow  # moto S3 and HTTP servers

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")
runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return mixed_folder(tmp_path_factory.mktemp("url") / "imgs")


@pytest.fixture(scope="module")
def reference(folder) -> ImageFolderSource:
    return ImageFolderSource(folder)


def _manifest(reference: ImageFolderSource, prefix: str) -> str:
    rows = [
        f"{prefix}{i},{reference.class_names[y]}"
        for i, y in zip(reference.ids, reference.labels, strict=True)
    ]
    return "path,label\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def http_url(folder):
    with serve_folder(folder) as url:
        yield url


@pytest.fixture(scope="module")
def s3_endpoint(folder, reference):
    """A moto S3 server with the folder's images under s3://scans/data/ and a manifest of
    relative paths at s3://scans/data/manifest.csv."""
    with moto_s3("scans") as server:
        for rel in reference.ids:
            server.client.upload_file(str(folder / rel), "scans", f"data/{rel}")
        body = _manifest(reference, "").encode()
        server.client.put_object(Bucket="scans", Key="data/manifest.csv", Body=body)
        yield server.endpoint


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """Credentials and endpoint from the environment, as a user sets them (never on the CLI)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _same_rows(src, reference, ids) -> None:
    assert src.ids.tolist() == list(ids)
    assert src.class_names == reference.class_names
    assert np.array_equal(src.labels, reference.labels)
    assert np.array_equal(src.split, reference.split)  # the same stratified splits
    for row in range(len(src)):
        assert np.array_equal(np.asarray(src.load_rgb(row)), np.asarray(reference.load_rgb(row)))


def test_s3_url_manifest_gives_the_folder_rows(tmp_path, reference, s3_env):
    csv = tmp_path / "m.csv"
    csv.write_text(_manifest(reference, "s3://scans/data/"))
    src = open_source(csv)
    _same_rows(src, reference, [f"s3://scans/data/{i}" for i in reference.ids])
    remote = open_source("s3://scans/data/manifest.csv")  # relative paths beside the manifest
    _same_rows(remote, reference, reference.ids.tolist())
    assert remote.locate(0) == f"s3://scans/data/{reference.ids[0]}"


def test_s3_manifest_extracts_the_folder_embeddings(tmp_path, reference, s3_env):
    extract(tmp_path / "dir.zarr", dataset="ds", source=reference, backbones=[TINY], workers=0,
            device="cpu", batch_size=4)  # fmt: skip
    args = ["extract", str(tmp_path / "s3.zarr"), "--dataset", "ds", "--backbone", TINY]
    args += ["--source", "s3://scans/data/manifest.csv", "--workers", "2", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    a, b = open_store(tmp_path / "dir.zarr"), open_store(tmp_path / "s3.zarr")
    assert np.array_equal(a.ids("ds"), b.ids("ds")) and np.array_equal(a.split("ds"), b.split("ds"))
    assert np.array_equal(a.embeddings("ds", TINY), b.embeddings("ds", TINY))


def test_http_url_manifest_gives_the_folder_rows(tmp_path, reference, http_url):
    csv = tmp_path / "m.csv"
    csv.write_text(_manifest(reference, f"{http_url}/"))
    _same_rows(CsvSource(csv), reference, [f"{http_url}/{i}" for i in reference.ids])


def test_missing_objects_are_one_line_or_missing_rows(tmp_path, reference, s3_env, http_url):
    csv = tmp_path / "m.csv"
    text = _manifest(reference, "s3://scans/data/")
    csv.write_text(text + "s3://scans/data/benign/gone.png,benign\n")
    src = CsvSource(csv)  # URLs are not checked up front
    with pytest.raises(BadImageError, match="'s3://scans/data/benign/gone.png' does not exist"):
        src.load_rgb(len(src) - 1)
    args = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--backbone", TINY]
    args += ["--source", str(csv), "--workers", "0", "--device", "cpu"]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert "gone.png" in failed.output.strip().splitlines()[-1]
    assert runner.invoke(app, [*args, "--skip-bad"]).exit_code == 0
    missing = open_store(tmp_path / "s.zarr").missing("ds", TINY)
    assert [m["id"] for m in missing] == ["s3://scans/data/benign/gone.png"]
    with pytest.raises(BadImageError, match="does not exist"):
        CsvSource(
            _write(tmp_path / "h.csv", f"path,label\n{http_url}/nope.png,a\n{http_url}/x.png,b\n")
        ).load(0)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path

"""Reading stores over HTTP and S3 without copying, against real servers on 127.0.0.1.

HTTP: the standard library's ``http.server`` serving a store folder from a thread.
S3: ``moto`` in server mode (a real S3-compatible HTTP endpoint), loaded with boto3.
Both bind to loopback only and are shut down at teardown.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store, open_store
from embedstore.archive import import_archive, verify
from embedstore.cli.main import app
from embedstore.errors import ReadOnlyError, StoreNotFoundError
from tests.conftest import make_dataset, write_embeddings
from tests.store.servers import moto_s3, serve_folder

pytestmark = pytest.mark.slow  # moto S3 and HTTP servers

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")
runner = CliRunner()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    s = create_store(root / "toy.zarr")
    make_dataset(s, "toy", n=40)
    rng = np.random.default_rng(5)
    write_embeddings(s, "toy", "bb", rng.normal(size=(40, 8)).astype(np.float32), chunk_rows=16)
    write_embeddings(s, "toy", "half", rng.normal(size=(40, 4)), dtype="float16", chunk_rows=8)
    return s


@pytest.fixture(scope="module")
def http_url(local):
    with serve_folder(Path(local.location).parent) as url:
        yield url


@pytest.fixture(scope="module")
def s3(local):
    with moto_s3("shared") as server:
        root = Path(local.location)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                key = "toy.zarr/" + path.relative_to(root).as_posix()
                server.client.upload_file(str(path), "shared", key)
        yield {
            "url": "s3://shared/toy.zarr",
            "endpoint": server.endpoint,
            "options": server.options,
        }


def _assert_same(remote, local):
    assert remote.read_only and remote.datasets() == local.datasets()
    assert remote.backbones("toy") == ["bb", "half"]
    for bb in ("bb", "half"):
        np.testing.assert_array_equal(remote.embeddings("toy", bb), local.embeddings("toy", bb))
        rows = np.array([1, 5, 17, 33])
        np.testing.assert_array_equal(
            remote.embeddings("toy", bb, rows=rows), local.embeddings("toy", bb, rows=rows)
        )
        assert remote.array_info("toy", bb) == local.array_info("toy", bb)
    np.testing.assert_array_equal(remote.labels("toy"), local.labels("toy"))
    np.testing.assert_array_equal(remote.ids("toy"), local.ids("toy"))
    np.testing.assert_array_equal(remote.split_rows("toy", "val"), local.split_rows("toy", "val"))


def test_http_store_reads_like_the_local_one(local, http_url):
    remote = open_store(f"{http_url}/toy.zarr")
    _assert_same(remote, local)
    with pytest.raises(ReadOnlyError):
        open_store(f"{http_url}/toy.zarr", mode="r+")
    report = verify(f"{http_url}/toy.zarr")
    assert report.ok and report.kind == "remote", report.problem_lines()


def test_http_missing_store_is_a_clear_error(http_url):
    with pytest.raises(StoreNotFoundError, match="no Zarr v3 store"):
        open_store(f"{http_url}/nothing.zarr")
    result = runner.invoke(app, ["ls", f"{http_url}/nothing.zarr"])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_cli_ls_and_info_on_a_url(local, http_url):
    result = runner.invoke(app, ["ls", f"{http_url}/toy.zarr", "--json"])
    assert result.exit_code == 0, result.output
    arrays = json.loads(result.stdout)["datasets"][0]["arrays"]
    assert [a["backbone"] for a in arrays] == ["bb", "half"]
    result = runner.invoke(app, ["info", f"{http_url}/toy.zarr", "toy", "--json"])
    assert json.loads(result.stdout)["n_samples"] == 40


def test_s3_store_reads_like_the_local_one(local, s3):
    remote = open_store(s3["url"], storage_options=s3["options"])
    _assert_same(remote, local)


def test_s3_import_is_bit_identical(local, s3, tmp_path):
    import_archive(s3["url"], tmp_path / "copy.zarr", storage_options=s3["options"])
    copied = Path(tmp_path / "copy.zarr" / "toy" / "half")
    original = Path(local.location) / "toy" / "half"
    files = sorted(p.relative_to(original) for p in original.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(copied) for p in copied.rglob("*") if p.is_file())
    assert all((copied / f).read_bytes() == (original / f).read_bytes() for f in files)


def test_cli_reads_s3_with_endpoint_from_environment(local, s3):
    env = {
        "AWS_ENDPOINT_URL": s3["endpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = runner.invoke(app, ["ls", s3["url"], "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["datasets"][0]["backbones"] == ["bb", "half"]
    result = runner.invoke(app, ["verify", s3["url"], "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "remote"


def _probe_json(location, env=None):
    args = ["probe", location, "-d", "toy", "-b", "bb", "--fuse", "bb,half"]
    result = runner.invoke(app, [*args, "--method", "proto,knn,logreg", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return [
        {k: rec[k] for k in ("features", "method", "metrics", "hyperparameters")}
        for rec in map(json.loads, result.stdout.splitlines())
    ]


def test_probe_runs_on_s3_and_on_an_archive_with_the_local_results(local, s3, tmp_path):
    from embedstore.archive import export_archive

    env = {
        "AWS_ENDPOINT_URL": s3["endpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    expected = _probe_json(local.location)
    assert len(expected) == 6
    assert _probe_json(s3["url"], env=env) == expected
    archive = tmp_path / "toy.zip"
    export_archive(local.location, archive)
    assert _probe_json(str(archive)) == expected


class _NoListings(http.server.SimpleHTTPRequestHandler):
    """A static host: files are served, folder URLs answer 404 (no listings)."""

    def log_message(self, *args):
        pass

    def list_directory(self, path):
        self.send_error(404, "no listings here")
        return None


@pytest.mark.slow
def test_a_server_without_folder_listings_is_said_so_never_an_empty_store(local):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        functools.partial(_NoListings, directory=str(Path(local.location).parent)),
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/toy.zarr"
        for argv in (["ls", url], ["info", url, "toy"], ["verify", url],
                     ["probe", url, "-d", "toy", "-b", "bb", "--method", "knn"]):  # fmt: skip
            result = runner.invoke(app, argv)
            assert result.exit_code == 1 and "Traceback" not in result.output, result.output
            assert "does not list folders" in result.output, (argv, result.output)
            assert "no datasets yet" not in result.output
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

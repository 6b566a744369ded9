"""Real servers on 127.0.0.1 for the tests that read or write remote data: a plain HTTP server over
a folder, and a moto S3 server (the real S3 API, in process) with buckets made and credentials
for boto3, fsspec/s3fs and the environment a user would set."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
KEY = SECRET = "testing"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@contextmanager
def serve_folder(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP; yields its base URL (no trailing slash)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass(frozen=True)
class S3:
    endpoint: str
    client: Any  # a boto3 S3 client for uploads

    @property
    def env(self) -> dict[str, str]:
        """The environment a user sets (credentials never go on the command line)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": REGION,
        }

    @property
    def options(self) -> dict[str, Any]:
        """fsspec storage options for s3fs."""
        return {
            "key": KEY,
            "secret": SECRET,
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": REGION},
        }


@contextmanager
def moto_s3(*buckets: str) -> Iterator[S3]:
    """A moto S3 server with ``buckets`` created."""
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield S3(endpoint, client)
    finally:
        server.stop()

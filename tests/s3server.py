"""A real S3-compatible server on loopback for tests: moto's server mode (`ThreadedMotoServer`), with the
standard AWS variables pointing at it, and a fresh bucket per test."""

from __future__ import annotations

import os
import uuid

from tests.components.pretrain.raycluster import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


class LoopbackS3:
    """`start()` runs the server and exports AWS_ENDPOINT_URL and test credentials; `bucket()` makes one."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.saved: dict[str, str | None] = {}

    def start(self) -> LoopbackS3:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}.items():
            self.saved[name] = os.environ.get(name)
            os.environ[name] = value
        return self

    def stop(self) -> None:
        for name, value in self.saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        if self.server is not None:
            self.server.stop()

    def bucket(self) -> str:
        """A new, empty bucket; returns its s3:// URL."""
        import boto3

        name = f"dsllm-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=name)
        return f"s3://{name}"

"""A real S3 API on 127.0.0.1 for tests: moto's standalone server, as s3fs's own tests use.

``s3_server`` (session-scoped) starts ``moto.server.ThreadedMotoServer`` on a
free port and stops it at teardown; ``s3_bucket`` gives each test a fresh
bucket.  Other test modules use them with::

    from tests.spark.s3_server import s3_bucket, s3_server  # noqa: F401  (fixtures)

Credentials are random per run and distinctive, so tests can assert that
they never leak into logs or outputs.  moto accepts any credentials.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["S3Server", "start_s3_server", "s3_server", "s3_bucket", "free_port"]

_AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                  "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                  "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                  "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _random_key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


@dataclass(frozen=True)
class S3Server:
    """Where the test S3 API listens and the credentials the tests use with it."""

    endpoint_url: str
    access_key: str = field(default_factory=_random_key_id)
    secret_key: str = field(default_factory=lambda: "lsTestSecret" + secrets.token_hex(14))
    region: str = "us-east-1"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (e.g. ``os.environ``) without any AWS_* setting, plus this server's."""
        env = {k: v for k, v in (base or {}).items() if k not in _AWS_VARIABLES}
        env.update(AWS_ENDPOINT_URL=self.endpoint_url, AWS_ACCESS_KEY_ID=self.access_key,
                   AWS_SECRET_ACCESS_KEY=self.secret_key, AWS_DEFAULT_REGION=self.region)
        return env

    @property
    def secrets(self) -> tuple[str, str]:
        """The strings that must never appear in a log or an output."""
        return (self.access_key, self.secret_key)

    def filesystem(self) -> Any:
        """A fresh s3fs filesystem on this server (explicit arguments, no environment)."""
        import s3fs

        return s3fs.S3FileSystem(key=self.access_key, secret=self.secret_key,
                                 endpoint_url=self.endpoint_url, skip_instance_cache=True)


def _wait_until_up(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"moto server on 127.0.0.1:{port} did not answer in {timeout}s") from exc
            time.sleep(0.1)


@contextlib.contextmanager
def start_s3_server(*, timeout: float = 30.0) -> Iterator[S3Server]:
    """Run moto's S3 API server on 127.0.0.1 (a free port) for the ``with`` block."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _wait_until_up(port, timeout)
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 API on 127.0.0.1 for the whole test run."""
    with start_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the test server; its name."""
    name = "lime-" + secrets.token_hex(6)
    s3_server.filesystem().mkdir(name)
    return name

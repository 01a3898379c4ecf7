"""Shared fixtures: a real server per test on an ephemeral port, and the tiny services in tests/apps."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _postgres import postgres_unavailable_reason, start_postgres, stop_postgres

from fnserve.client.api import Client
from fnserve.settings import Settings
from fnserve.testing import run_server

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(Path(__file__).parent))
EXAMPLES = Path(__file__).parent.parent / "examples"
sys.path.insert(0, str(APPS))
sys.path.insert(0, str(EXAMPLES))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """A fresh server with its own state folder, stopped (replicas included) after the test."""
    with run_server(home=tmp_path / "home", graceful_shutdown_s=2) as url:
        yield url


@pytest.fixture
def client(server_url: str) -> Iterator[Client]:
    with Client(server_url) as api:
        yield api


# Environments built by uv are shared by every test (and kept between runs, as CI keeps it within one run): a
# requirement set is built once, later deploys of it are cache hits.
SHARED_ENVS = Path(__file__).parent.parent / ".cache" / "test-envs"


@pytest.fixture(scope="session")
def envs_dir() -> Path:
    SHARED_ENVS.mkdir(parents=True, exist_ok=True)
    return SHARED_ENVS


@pytest.fixture
def env_server_url(tmp_path: Path, envs_dir: Path) -> Iterator[str]:
    """A fresh server whose environments come from the shared folder."""
    with run_server(home=tmp_path / "home", settings=Settings(envs_dir=envs_dir), graceful_shutdown_s=2) as url:
        yield url


@pytest.fixture(scope="module")
def echo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server per test module with the echo service deployed, for tests that only read."""
    from echo import echo

    import fnserve as fs

    with run_server(home=tmp_path_factory.mktemp("echo-home"), graceful_shutdown_s=2) as url:
        with fs.deploy(echo, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the session (or FNSERVE_TEST_POSTGRES_URL); skips with the reason
    when PostgreSQL is not installed (`scripts/postgres.sh install` installs it; `.ci/run` does)."""
    reason = postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    tmp_dir = tmp_path_factory.mktemp("postgres")
    url = start_postgres(tmp_dir)
    try:
        yield url
    finally:
        stop_postgres(tmp_dir)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL where nothing listens: the port is bound (so nobody else takes it) but never accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()

"""Real PostgreSQL servers for tests: a throwaway cluster started by `scripts/postgres.sh`, or an existing one.

Installing PostgreSQL is not done here (apt takes minutes): `.ci/run` runs `scripts/postgres.sh install`, and
without the binaries `postgres_unavailable_reason()` says so, for the fixture to skip. Set
`FNSERVE_TEST_POSTGRES_URL` to use an existing server instead of starting one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
URL_ENV = "FNSERVE_TEST_POSTGRES_URL"
NOT_INSTALLED = "PostgreSQL is not installed; run `scripts/postgres.sh install`"
SCRIPT_TIMEOUT_S = 90  # the script bounds each of its own waits at 30 s; this bounds the whole run
START_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it
_POINTER = "postgres-dir"  # in tmp_dir: where the cluster lives


def postgres_unavailable_reason() -> str | None:
    """Why a real PostgreSQL cannot be used here, or None when `start_postgres` should work."""
    if importlib.util.find_spec("psycopg") is None:
        return 'psycopg is not installed; run `.venv/bin/pip install -e ".[dev]"`'
    if os.environ.get(URL_ENV):
        return None
    if shutil.which("bash") is None:
        return "bash is not on PATH; scripts/postgres.sh needs it"
    found = subprocess.run(
        ["bash", str(SCRIPT), "bindir"], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, check=False
    )
    if found.returncode != 0:
        return NOT_INSTALLED
    return None


def start_postgres(tmp_dir: Path) -> str:
    """Start a throwaway cluster on a free port on 127.0.0.1 and return its SQLAlchemy URL.

    With `FNSERVE_TEST_POSTGRES_URL` set, start nothing and return that URL. The cluster lives in a short
    folder under the system temp dir rather than in `tmp_dir`: as root the server runs as the `postgres` user,
    which cannot enter pytest's private `/tmp/pytest-of-root`, and the socket path must stay under 108 bytes.
    `tmp_dir` records where the cluster is, for `stop_postgres`.
    """
    existing = os.environ.get(URL_ENV)
    if existing:
        return existing
    cluster_dir = Path(tempfile.mkdtemp(prefix="fnserve-pg-"))
    (tmp_dir / _POINTER).write_text(str(cluster_dir))
    errors: list[str] = []
    for _ in range(START_ATTEMPTS):
        started = _run_script("start", str(cluster_dir), str(_free_port()))
        if started.returncode == 0:
            return started.stdout.strip().splitlines()[-1]
        errors.append(started.stderr.strip())
        if "Address already in use" not in started.stderr:
            break
    _run_script("stop", str(cluster_dir))  # in case it failed after the server came up (createdb); keep the files
    raise RuntimeError(f"scripts/postgres.sh start failed; its files are in {cluster_dir}:\n" + "\n".join(errors))


def stop_postgres(tmp_dir: Path) -> None:
    """Stop the cluster `start_postgres(tmp_dir)` started and delete its files, keeping its log in `tmp_dir`."""
    pointer = tmp_dir / _POINTER
    if not pointer.exists():  # nothing was started: FNSERVE_TEST_POSTGRES_URL, or start_postgres was not called
        return
    cluster_dir = Path(pointer.read_text())
    stopped = _run_script("stop", str(cluster_dir))
    if stopped.returncode != 0:
        raise RuntimeError(f"scripts/postgres.sh stop failed; the cluster is left in {cluster_dir}:\n{stopped.stderr}")
    log = cluster_dir / "postgres.log"
    if log.exists():
        shutil.copyfile(log, tmp_dir / "postgres.log")
    shutil.rmtree(cluster_dir)
    pointer.unlink()


def _run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, check=False
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fresh_database(url: str) -> str:
    """A new, empty database on the server at `url` (for a test that needs a store of its own); returns its URL."""
    name = f"fnserve_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return str(sa.make_url(url).set(database=name).render_as_string(hide_password=False))

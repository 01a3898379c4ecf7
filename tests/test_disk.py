"""Full and read-only storage (`fnserve.disk`): a 507 naming the folder, one log line and no traceback, the
connection kept, nothing half-written, and the server going on by itself once it can write again.

The disks fail for real (tests/_small_disk.py): a small tmpfs filled to its last byte, a home or folder mounted
read-only, a file size limit; the database's failures are SQLite's own (a page limit gives its "database or disk
is full"). The chmod variants run only where the tests are not root: root writes through permissions.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from _server_process import FNSERVE, free_port, server_log, server_process
from _small_disk import (
    READ_ONLY,
    TMPFS,
    bind,
    file_size_limit,
    fill,
    in_namespace,
    lift_file_size_limit,
    namespace_unavailable,
    remount,
    seen_by,
)
from jobs import jobs

import fnserve as fs
from fnserve.disk import storage_error
from fnserve.errors import StorageFull, StorageUnavailable
from fnserve.store import StateStore
from fnserve.store.tables import functions
from fnserve.testing import wait_until

MIB = 1024 * 1024
IS_ROOT = os.geteuid() == 0
needs_namespace = pytest.mark.skipif(namespace_unavailable() is not None, reason=str(namespace_unavailable()))
needs_non_root = pytest.mark.skipif(IS_ROOT, reason="root writes through file permissions, so chmod cannot refuse it")


class KeepAlive:
    """One HTTP/1.1 connection, kept: each request must go over the same socket as the first."""

    def __init__(self, url: str, key: str) -> None:
        self.connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        self.headers = {"authorization": f"Bearer {key}"}
        self.socket: Any = None

    def request(self, method: str, path: str, body: bytes | dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = self.headers
        if isinstance(body, dict):
            body, headers = orjson.dumps(body), {**headers, "content-type": "application/json"}
        self.connection.request(method, path, body=body, headers=headers)
        if self.socket is None:
            self.socket = self.connection.sock
        assert self.connection.sock is self.socket, "the server closed the connection; this request went on a new one"
        response = self.connection.getresponse()
        data = response.read()
        assert not response.will_close, f"the server is closing the connection after {method} {path}"
        return response.status, orjson.loads(data) if data else None

    def close(self) -> None:
        self.connection.close()


def assert_507(answer: tuple[int, Any], code: str, where: Path) -> str:
    """Check a 507 naming `where`; returns its request id."""
    status, body = answer
    assert status == 507, body
    assert body["error"]["code"] == code
    assert str(where) in body["error"]["message"]
    assert body["error"]["details"]["path"].startswith(str(where))
    return str(body["error"]["request_id"])


def assert_log_is_plain(log: Path, code: str, *request_ids: str) -> None:
    """No traceback anywhere, and each refused request logged in one line under its request id."""
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert f": {code} " in text
    for request_id in request_ids:
        lines = [line for line in text.splitlines() if f"Request [{request_id}]" in line]
        assert len(lines) == 1, lines
        assert f": {code} " in lines[0]


@contextlib.contextmanager
def deployed_jobs(url: str, key: str) -> Iterator[None]:
    with fs.deploy(jobs, url=url, api_key=key)() as deployment:
        deployment.wait(timeout_s=60)
        yield


def run_job(client: KeepAlive, n: int) -> None:
    """Submit a job and see it complete, on the kept connection."""
    status, body = client.request("POST", "/jobs/run", {"endpoint": "/double", "input": {"n": n}})
    assert status == 202, body

    def done() -> Any:
        answer = client.request("GET", f"/jobs/status/{body['id']}")[1]
        return answer if answer["status"] == "COMPLETED" else None

    assert wait_until(done, timeout_s=30, what="the job to complete")["output"] == 2 * n


@needs_namespace
def test_a_full_disk_answers_507_keeps_the_connection_and_recovers_without_a_restart(tmp_path: Path) -> None:
    """1. `fnserve server` on a 24 MiB tmpfs home, with the jobs service deployed and an asset created.
    2. Another program fills the disk to its last byte.
    3. On one keep-alive connection: creating an asset, uploading one and submitting a job answer 507 storage_full
       naming the home; a synchronous call (no storage needed) still answers 200; the connection stays open.
    4. Nothing half-written: no upload file left, no job created. One log line per refusal, no traceback.
    5. The filler is deleted: the same requests succeed, with no restart."""
    home = tmp_path / "home"
    home.mkdir()
    with server_process(home, prefix=in_namespace(home, TMPFS.format(size="24m"))) as (process, url, key):
        view = seen_by(process.pid, home)
        with contextlib.closing(KeepAlive(url, key)) as client, deployed_jobs(url, key):
            run_job(client, 1)
            status, early = client.request("POST", "/v1/assets", {})
            assert status == 201, early
            jobs_before = len(client.request("GET", "/v1/jobs")[1])
            filler = fill(view)

            created = assert_507(client.request("POST", "/v1/assets", {}), "storage_full", home)
            assert client.request("GET", "/-/healthz")[0] == 200
            uploaded = client.request("PUT", f"/v1/assets/{early['asset_id']}/content", os.urandom(MIB))
            upload = assert_507(uploaded, "storage_full", home)
            assert list((view / "assets").iterdir()) == []  # the partial upload is gone
            submitted = client.request("POST", "/jobs/run", {"endpoint": "/double", "input": {"n": 2}})
            run = assert_507(submitted, "storage_full", home)
            assert client.request("POST", "/jobs/double", {"n": 3}) == (200, 6)
            assert len(client.request("GET", "/v1/jobs")[1]) == jobs_before
            assert_log_is_plain(server_log(home, url), "storage_full", created, upload, run)

            filler.unlink()
            status, asset = client.request("POST", "/v1/assets", {})
            assert status == 201, asset
            status, uploaded = client.request("PUT", f"/v1/assets/{asset['asset_id']}/content", b"back")
            assert (status, uploaded["size"]) == (200, 4)
            run_job(client, 4)
    assert "Traceback" not in server_log(home, url).read_text()


def _upload(client: KeepAlive) -> tuple[int, Any]:
    status, asset = client.request("POST", "/v1/assets", {})
    assert status == 201, asset
    return client.request("PUT", f"/v1/assets/{asset['asset_id']}/content", b"data")


@pytest.mark.parametrize(
    "how", [pytest.param("mount", marks=needs_namespace), pytest.param("chmod", marks=needs_non_root)]
)
def test_a_folder_made_read_only_answers_507_and_recovers(tmp_path: Path, how: str) -> None:
    """1. A server runs; its assets folder becomes read-only (mounted read-only, or chmod 0500).
    2. An upload answers 507 storage_unavailable naming the folder, on a connection that stays open; a job whose
       result is too large to answer inline cannot store it, and fails with the same error.
    3. The folder is made writable again: uploads and stored results work, with no restart."""
    home = tmp_path / "home"
    home.mkdir()
    prefix = in_namespace(home, 'exec "$@"') if how == "mount" else []
    env = {"FNSERVE_MAX_INLINE_RESULT_BYTES": "100"}
    with contextlib.ExitStack() as stack:
        process, url, key = stack.enter_context(server_process(home, env, prefix=prefix))
        stack.enter_context(deployed_jobs(url, key))
        assets = home / "assets"
        if how == "mount":
            bind(process.pid, assets)
            remount(process.pid, assets, "bind,ro")
        else:
            assets.chmod(0o500)
        client = stack.enter_context(contextlib.closing(KeepAlive(url, key)))
        assert_507(_upload(client), "storage_unavailable", assets)
        status, job = client.request("POST", "/jobs/runsync", {"endpoint": "/big", "input": {"size": 1000}})
        assert (status, job["status"], job["error"]["code"]) == (200, "FAILED", "storage_unavailable"), job
        assert_log_is_plain(server_log(home, url), "storage_unavailable")

        if how == "mount":
            remount(process.pid, assets, "bind,rw")
        else:
            assets.chmod(0o700)
        assert _upload(client)[0] == 200
        status, job = client.request("POST", "/jobs/runsync", {"endpoint": "/big", "input": {"size": 1000}})
        assert job["status"] == "COMPLETED", job


@pytest.mark.parametrize(
    "how", [pytest.param("mount", marks=needs_namespace), pytest.param("chmod", marks=needs_non_root)]
)
def test_a_server_on_a_read_only_home_stops_with_one_line(tmp_path: Path, how: str) -> None:
    """A home used before, now read-only: `fnserve server` exits 1 with one line naming the home, no traceback."""
    home = tmp_path / "home"
    home.mkdir()
    with server_process(home):
        pass
    if how == "chmod":
        for path in home.rglob("*"):
            path.chmod(0o500 if path.is_dir() else 0o400)
        home.chmod(0o500)
    prefix = in_namespace(home, READ_ONLY) if how == "mount" else []
    try:
        ended = subprocess.run(
            [*prefix, str(FNSERVE), "server", "--home", str(home), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            env={name: value for name, value in os.environ.items() if not name.startswith("FNSERVE_")},
        )
    finally:
        for path in [home, *home.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)
    output = (ended.stdout + ended.stderr).strip()
    assert ended.returncode == 1, output
    assert "Traceback" not in output
    assert len(output.splitlines()) <= 2, output  # rich may wrap the one line
    assert f"Could not write to {home}" in " ".join(output.split()), output


def test_a_write_past_the_file_size_limit_is_507_and_leaves_nothing(tmp_path: Path) -> None:
    """Where no disk of its own can be had, a file size limit (RLIMIT_FSIZE, 3 MiB) makes writes fail for real (EFBIG).
    1. A 4 MiB upload answers 507 storage_full naming the assets folder; the connection stays; no file is left.
    2. A synchronous call whose result must be stored (over the inline limit) answers the same 507.
    3. A 1 MiB upload works meanwhile; once the limit is lifted, the 4 MiB one does too."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"FNSERVE_MAX_INLINE_RESULT_BYTES": "1000"}
    with (
        server_process(home, env, preexec_fn=file_size_limit(3 * MIB)) as (process, url, key),
        deployed_jobs(url, key),
        contextlib.closing(KeepAlive(url, key)) as client,
    ):
        status, asset = client.request("POST", "/v1/assets", {})
        assert status == 201
        big = os.urandom(4 * MIB)
        assert_507(
            client.request("PUT", f"/v1/assets/{asset['asset_id']}/content", big), "storage_full", home / "assets"
        )
        assert list((home / "assets").iterdir()) == []
        assert_507(client.request("POST", "/jobs/big", {"size": 4 * MIB}), "storage_full", home / "assets")
        assert client.request("PUT", f"/v1/assets/{asset['asset_id']}/content", os.urandom(MIB))[0] == 200
        assert_log_is_plain(server_log(home, url), "storage_full")
        lift_file_size_limit(process.pid)
        assert _upload_bytes(client, big) == 200


def _upload_bytes(client: KeepAlive, data: bytes) -> int:
    asset = client.request("POST", "/v1/assets", {})[1]
    return client.request("PUT", f"/v1/assets/{asset['asset_id']}/content", data)[0]


def test_the_state_store_raises_storage_full_when_sqlite_is_full(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (a page limit), through the store: StorageFull naming the folder, not
    SQLAlchemy's OperationalError; the store works again once there is room."""
    store = StateStore(f"sqlite:///{tmp_path / 'fnserve.db'}")
    pages = store.engine.connect().exec_driver_sql("PRAGMA page_count").scalar()
    limit = {"pages": int(pages or 0) + 1}

    @sa.event.listens_for(store.engine, "connect")
    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={limit['pages']}")

    store.engine.dispose()
    row = {"description": "x" * 20_000, "tags": "[]", "versions_created": 0}

    def insert_many() -> None:
        with store.engine.begin() as connection:
            for i in range(10):
                connection.execute(functions.insert().values(function_id=f"fn-{i}", name=f"f{i}", **row, **_times()))

    with pytest.raises(StorageFull, match=f"Could not write to {tmp_path}: no room left") as full:
        insert_many()
    assert "SQLITE_FULL" in full.value.message
    limit["pages"] = 100_000
    store.engine.dispose()
    with store.engine.begin() as connection:
        connection.execute(functions.insert().values(function_id="fn-x", name="fx", **row, **_times()))
    store.close()


def _times() -> dict[str, Any]:
    from fnserve.store.functions import utcnow

    now = utcnow()
    return {"created_at": now, "updated_at": now}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), StorageFull),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), StorageFull),
        (OSError(errno.EFBIG, "File too large"), StorageFull),
        (OSError(errno.EROFS, "Read-only file system"), StorageUnavailable),
        (OSError(errno.EACCES, "Permission denied"), StorageUnavailable),
        (OSError(errno.ENOENT, "No such file or directory"), None),
        (ValueError("not storage"), None),
    ],
)
def test_storage_error_knows_os_errors(error: BaseException, expected: type[StorageUnavailable] | None) -> None:
    found = storage_error(error, "/srv/home")
    assert (type(found) if found is not None else None) is expected
    if found is not None:
        assert found.http_status == 507
        assert found.message.startswith("Could not write to /srv/home")


def test_storage_error_knows_sqlite_errors(tmp_path: Path) -> None:
    """Real errors from sqlite3: a read-only database, and a full one."""
    path = tmp_path / "x.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as refused:
        read_only.execute("INSERT INTO t VALUES (1)")
    assert isinstance(storage_error(refused.value, tmp_path), StorageUnavailable)
    full = sqlite3.connect(path)
    full.execute("PRAGMA max_page_count=2")
    with pytest.raises(sqlite3.OperationalError) as no_room:
        full.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
    assert isinstance(storage_error(no_room.value, tmp_path), StorageFull)
    busy = sqlite3.OperationalError("database is locked")
    assert storage_error(busy, tmp_path) is None
    read_only.close()
    full.close()

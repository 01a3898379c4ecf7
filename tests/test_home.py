"""The home folder (`fnserve.home`): private to its owner, held by one server at a time, and cleared at start of what
killed servers left behind. Real servers over HTTP, real processes killed with SIGKILL."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _auth import owner
from _server_process import FNSERVE, free_port, server_process
from conftest import APPS

import fnserve as fs
from fnserve.errors import HomeInUse
from fnserve.home import SocketFolder
from fnserve.sdk.deploy import deploy_project
from fnserve.settings import Settings
from fnserve.testing import run_server, wait_until


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """The usual umask, so a file written without an explicit mode shows up as readable by others."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def readable_by_others(home: Path) -> list[str]:
    """Everything under `home` with a group or other permission bit (environments aside: their venvs are not state),
    as `path mode`."""
    loose = []
    for path in [home, *home.rglob("*")]:
        if "envs" in path.relative_to(home).parts or path.is_symlink():
            continue
        if path.stat().st_mode & 0o077:
            loose.append(f"{path.relative_to(home)} {stat.S_IMODE(path.stat().st_mode):o}")
    return loose


def test_state_is_private_after_a_session_that_writes_everywhere(tmp_path: Path) -> None:
    """1. Under umask 022, start a server and deploy a project folder (artifacts/, code/), call it (replica logs/),
       run jobs whose results are stored inline (the database, its -wal and -shm) and as assets, upload an asset.
    2. The home and every folder in it are 0700, every file 0600."""
    home = tmp_path / "home"
    from echo import echo

    with umask(0o022), run_server(home=home, settings=Settings(inline_result_bytes=60), graceful_shutdown_s=2) as url:
        with fs.Client(url) as client:
            deploy_project(echo, APPS, "echo:echo", client=client).wait(timeout_s=30).close()
        with httpx.Client(base_url=url, headers=owner(url), timeout=30) as http:
            assert http.post("/echo/echo", json={"text": "hi", "greeting": "yo"}).status_code == 200
            for text in ("short", "x" * 100):  # inline, then over inline_result_bytes: stored as an asset
                job = http.post("/echo/runsync", json={"endpoint": "/echo", "input": {"text": text, "greeting": "g"}})
                assert job.json()["status"] == "COMPLETED", job.text
            asset = http.post("/v1/assets", json={}).json()
            assert http.put(f"/v1/assets/{asset['asset_id']}/content", content=b"data").status_code == 200
        for name in ("fnserve.db", "fnserve.db-wal", "fnserve.db-shm", "owner.key", "server.id", "server.lock"):
            assert (home / name).exists(), name
        assert any((home / "logs").rglob("*.log"))
        assert any((home / "code").iterdir())
        assert len(list((home / "assets").iterdir())) == 2
        assert readable_by_others(home) == []
        assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_home_made_readable_by_an_older_server_is_made_private_at_start(tmp_path: Path) -> None:
    """1. Run a server once, then open its home up as older fnserve versions left it (0755 folders, 0644 files).
    2. The next start makes it private again: the database and its -wal/-shm, logs, artifacts, assets, code."""
    home = tmp_path / "home"
    from echo import echo

    with run_server(home=home, graceful_shutdown_s=2) as url, fs.Client(url) as client:
        deploy_project(echo, APPS, "echo:echo", client=client).wait(timeout_s=30).close()
    for path in [home, *home.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    (home / "fnserve.db-wal").touch(mode=0o644)  # as a server killed mid-write leaves them
    (home / "fnserve.db-shm").touch(mode=0o644)
    assert len(readable_by_others(home)) > 10
    with run_server(home=home, graceful_shutdown_s=2):
        shallow = [line for line in readable_by_others(home) if not line.startswith("code/")]
        assert shallow == []  # inside code/, each project's own files sit behind its private folder
        for project in (home / "code").iterdir():
            assert stat.S_IMODE(project.stat().st_mode) == 0o700


def test_a_second_server_on_a_home_in_use_is_refused_in_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url:
        second = run_server(home=home)
        with pytest.raises(HomeInUse, match=rf"pid {os.getpid()}, {url}\) is using the home folder"):
            second.__enter__()
        assert httpx.get(f"{url}/-/healthz").status_code == 200  # the first one goes on
    with run_server(home=home, graceful_shutdown_s=2) as again:  # and once it stopped, the home is free
        assert httpx.get(f"{again}/-/healthz").status_code == 200


def _socket_folder_of(pid: int) -> Path:
    """The replica socket folder a server process holds (its lock file is open in the process)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = Path(os.readlink(fd))
            if target.name == SocketFolder.LOCK and SocketFolder.NAME.fullmatch(target.parent.name):
                return target.parent
    raise AssertionError(f"server {pid} holds no socket folder")


def test_one_home_one_server_and_a_killed_server_never_blocks_the_next(tmp_path: Path) -> None:
    """1. Start `fnserve server` A on a home.
    2. Start B on the same home: it exits at once with one line naming A's pid and port (no replica, no traceback).
    3. SIGKILL A. Its replica socket folder is left in /tmp, and its lock goes with it.
    4. C starts on the same home, and removes A's socket folder."""
    home = tmp_path / "home"
    home.mkdir()
    with server_process(home) as (first, url, _key):
        second = subprocess.run(
            [str(FNSERVE), "server", "--home", str(home), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=30,
            env={key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")},
        )
        assert second.returncode == 1, second
        output = (second.stdout + second.stderr).strip()
        assert "Traceback" not in output
        assert f"pid {first.pid}, {url})" in output, output
        assert f"home folder {home}" in output
        left_behind = _socket_folder_of(first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert left_behind.is_dir()
    with server_process(home) as (third, _url, _key):
        assert not left_behind.exists()
        assert _socket_folder_of(third.pid).is_dir()


def test_stale_socket_folders_are_removed_only_when_their_server_is_gone(tmp_path: Path) -> None:
    """Each kind of folder `remove_stale` meets in /tmp, made for real: live and dead servers, old servers without
    a lock file (alive if their socket accepts), and other folders that only look alike."""
    parent = tmp_path

    def folder(name: str, *files: str) -> Path:
        path = parent / name
        path.mkdir()
        for each in files:
            (path / each).touch()
        return path

    alive = SocketFolder()  # in the real /tmp; its lock is held by this process
    dead_lock = folder("fnserve-dead0001", "server.lock", "replicas.sock")
    held = folder("fnserve-held0001", "server.lock")
    held_fd = os.open(held / "server.lock", os.O_RDWR)
    fcntl.flock(held_fd, fcntl.LOCK_EX)
    old_dead = folder("fnserve-olddead1")
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(old_dead / "replicas.sock"))  # bound, then closed: connecting is refused
    old_alive = folder("fnserve-oldlive1")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(old_alive / "replicas.sock"))
    listening.listen(1)
    others = [
        folder("fnserve-pg-abcdefgh", "server.lock"),
        folder("fnserve-model-1234", "server.lock"),
        folder("fnserve-notours1", "server.lock", "data.txt"),
    ]
    try:
        assert SocketFolder.remove_stale(str(parent)) == 2
        assert not dead_lock.exists()
        assert not old_dead.exists()
        assert held.exists()
        assert old_alive.exists()
        assert all(path.exists() for path in others)
        SocketFolder.remove_stale()
        assert Path(alive.path).is_dir()
    finally:
        listening.close()
        os.close(held_fd)
        alive.remove()


def test_a_server_killed_mid_upload_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    """1. Start `fnserve server`, create an asset and stream its bytes slowly.
    2. SIGKILL the server while the upload's temporary file is there.
    3. The next server on the home removes it; the asset is still CREATED, to be uploaded again."""
    home = tmp_path / "home"
    home.mkdir()
    release = threading.Event()
    with server_process(home) as (process, url, key):
        headers = {"authorization": f"Bearer {key}"}
        asset_id = httpx.post(f"{url}/v1/assets", json={}, headers=headers).json()["asset_id"]

        def body() -> Iterator[bytes]:
            yield b"x" * 65536
            release.wait(timeout=20)

        def upload() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.put(f"{url}/v1/assets/{asset_id}/content", content=body(), headers=headers, timeout=30)

        uploader = threading.Thread(target=upload)
        uploader.start()
        try:
            wait_until(lambda: list((home / "assets").glob(".upload-*")), timeout_s=10, what="the upload to start")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            release.set()
            uploader.join(timeout=30)
    assert list((home / "assets").glob(".upload-*"))
    with server_process(home) as (_process, url, key):
        assert list((home / "assets").iterdir()) == []
        asset = httpx.get(f"{url}/v1/assets/{asset_id}", headers={"authorization": f"Bearer {key}"}).json()
        assert asset["state"] == "CREATED"


def test_the_lock_file_names_the_server_that_holds_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url:
        assert (home / "server.lock").read_bytes() == f'{{"pid":{os.getpid()},"url":"{url}"}}'.encode()

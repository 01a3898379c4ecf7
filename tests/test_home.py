"""The home folder (`fnserve.home`): private to its owner. Real servers over HTTP."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
from _auth import owner
from conftest import APPS

import fnserve as fs
from fnserve.sdk.deploy import deploy_project
from fnserve.settings import Settings
from fnserve.testing import run_server


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
        for name in ("fnserve.db", "fnserve.db-wal", "fnserve.db-shm", "owner.key", "server.id"):
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

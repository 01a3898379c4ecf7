"""Versions from the command line: blue/green deploys, --keep-old, versions, status and rollback."""

from __future__ import annotations

from pathlib import Path

import httpx
from _cli import fnserve

APP = """
import fnserve as fs


@fs.service(name="which", auth=False)
def which() -> dict[str, str]:
    return {{}}


@which.endpoint("/version")
def version() -> str:
    return "{label}"
"""


def project(root: Path, label: str) -> str:
    folder = root / label
    folder.mkdir()
    (folder / "app.py").write_text(APP.format(label=label))
    return str(folder / "app.py")


def answers(url: str, count: int = 8) -> set[str]:
    return {httpx.post(f"{url}/which/version", timeout=10).json() for _ in range(count)}


def test_deploy_rollback_versions_and_status(server_url: str, tmp_path: Path) -> None:
    """
    1. Deploy `a`, then `b` under the same name: only `b` answers, `a` is INACTIVE (blue/green).
    2. `fnserve rollback which` serves `a` again; `--to 2` goes back to `b`.
    3. `fnserve deploy --keep-old` of `c` keeps `b`: both answer, and each is reachable pinned.
    4. `fnserve versions` and `fnserve status` show the versions, states and replicas.
    """
    first, second, third = (project(tmp_path, label) for label in ("a", "b", "c"))
    assert fnserve("deploy", first, url=server_url).returncode == 0
    assert fnserve("deploy", second, url=server_url).returncode == 0
    assert answers(server_url) == {"b"}

    rolled = fnserve("rollback", "which", url=server_url)
    assert rolled.returncode == 0, rolled.stderr
    assert answers(server_url) == {"a"}
    assert fnserve("rollback", "which", "--to", "2", url=server_url).returncode == 0
    assert answers(server_url) == {"b"}

    assert fnserve("deploy", "--keep-old", third, url=server_url).returncode == 0
    assert answers(server_url, 12) == {"b", "c"}
    pinned = httpx.post(f"{server_url}/which/-/versions/2/version", timeout=10).json()
    assert pinned == "b"
    header = httpx.post(f"{server_url}/which/version", headers={"fnserve-version": "3"}, timeout=10).json()
    assert header == "c"

    versions = fnserve("versions", "which", url=server_url)
    assert versions.returncode == 0
    rows = [line for line in versions.stdout.splitlines() if "ver-" in line]
    assert len(rows) == 3
    assert "INACTIVE" in rows[0]
    assert "ACTIVE" in rows[1]
    assert "ACTIVE" in rows[2]
    assert "(current)" in rows[2]

    status = fnserve("status", "which", url=server_url)
    assert status.returncode == 0
    assert "Replicas of version 3" in status.stdout
    assert "READY" in status.stdout


def test_rollback_without_an_earlier_version_fails_clearly(server_url: str, tmp_path: Path) -> None:
    assert fnserve("deploy", project(tmp_path, "only"), url=server_url).returncode == 0
    result = fnserve("rollback", "which", url=server_url)
    assert result.returncode != 0
    assert "no version before 1" in result.stderr
    assert "Traceback" not in result.stderr

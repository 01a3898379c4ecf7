"""A server killed (SIGKILL) while it builds an environment: the half-built venv is never used, and the restarted
server builds it again from scratch and serves the version."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from _server_process import server_process
from pinned import numpy_version

import fnserve as fs
from fnserve.testing import wait_until


def test_server_killed_mid_build_never_uses_the_half_built_environment(tmp_path: Path) -> None:
    """1. A server with an empty environments folder deploys a numpy service; the moment its venv folder appears
       (still `.tmp`: uv is installing into it), the server is SIGKILLed.
    2. The half-built folder is left as it was, never renamed into place.
    3. A new server on the same home restores the deployment (BUILDING), builds the environment anew, and the
       service answers with numpy from it; `prune` then removes the leftover."""
    home, envs = tmp_path / "home", tmp_path / "envs"
    home.mkdir()
    extra = {"FNSERVE_ENVS_DIR": str(envs)}
    with server_process(home, extra) as (process, url, key):
        fs.deploy(numpy_version, url=url, api_key=key)().close()

        def building() -> list[Path]:
            return [path for path in envs.glob(".*.tmp") if (path / "bin").exists()]

        half_built = wait_until(building, timeout_s=60, interval_s=0.002, what="the venv folder to appear")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert not [path for path in envs.iterdir() if (path / "fnserve-env.json").is_file()]
    assert all(path.exists() for path in half_built)

    with server_process(home, extra) as (_process, url, key):
        headers = {"authorization": f"Bearer {key}"}

        def active() -> bool:
            state = httpx.get(f"{url}/v1/services/numpy_version", headers=headers, timeout=10).json()["state"]
            assert state != "ERROR"
            return bool(state == "ACTIVE")

        wait_until(active, timeout_s=120, what="the restored deployment to be ACTIVE")
        answer = httpx.get(f"{url}/numpy_version/version", headers=headers, timeout=10).json()
        assert answer == "2.4.6"
        built = [path for path in envs.iterdir() if (path / "fnserve-env.json").is_file()]
        assert len(built) == 1
        assert built[0] not in half_built
        pruned = httpx.post(f"{url}/v1/environments/prune", headers=headers, timeout=30).json()
    assert {path.name for path in half_built} <= set(pruned["removed"])

"""Environments from the command line: `fnserve env ...`, `fnserve build-log`, and `fnserve deploy` of projects whose
packages this machine lacks or that list them in a requirements.txt."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from _auth import owner
from _cli import REPO, fnserve

APPS = REPO / "tests" / "apps"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_deploy_of_a_file_whose_package_is_missing_here_reads_it_on_the_server(env_server_url: str) -> None:
    """1. tabulate is not installed in this test's environment, so importing tables.py fails here.
    2. `fnserve deploy` says so, the server builds the environment and reads the service there, and deploys it.
    3. The service works, with tabulate from its own environment."""
    out = ok(fnserve("deploy", str(APPS / "needs_tabulate" / "tables.py"), url=env_server_url))

    assert "tabulate is not installed here" in out
    assert "ACTIVE" in out
    response = httpx.post(
        f"{env_server_url}/tables/render", json={"rows": [[1, 2], [3, 4]]}, headers=owner(env_server_url), timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json() == "1  2\n3  4"


def test_deploy_of_a_file_that_fails_in_its_environment_names_the_file_and_line(env_server_url: str) -> None:
    result = fnserve("deploy", str(APPS / "needs_tabulate" / "broken.py"), url=env_server_url)

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "broken.py" in output
    assert "line 9" in output
    assert "no_such_function" in output


def test_deploy_uses_the_projects_requirements_txt(env_server_url: str) -> None:
    ok(fnserve("deploy", str(APPS / "project_requirements" / "app.py"), url=env_server_url))

    response = httpx.get(f"{env_server_url}/from_project/six", headers=owner(env_server_url), timeout=10)
    assert response.json() == "1.16.0"
    log = ok(fnserve("build-log", "from_project", url=env_server_url))
    assert "six==1.16.0" in log
    status = ok(fnserve("status", "from_project", url=env_server_url))
    assert "Environment python" in status
    assert "six==1.16.0, 1 package locked" in status


def test_env_create_ls_rm_and_a_service_that_names_it(env_server_url: str, tmp_path: Path) -> None:
    """1. `env create` from a requirements file; `env ls` lists it.
    2. A service with env="sixes" deploys on it.
    3. `env ls` shows the build with its size and user; `env rm` removes the named environment."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    created = ok(fnserve("env", "create", "sixes", "-r", str(requirements), url=env_server_url))
    assert "sixes" in created
    assert "six==1.17.0" in created

    app = tmp_path / "named.py"
    app.write_text(
        "import fnserve as fs\n\n\n"
        '@fs.service(env="sixes")\n'
        "def named():\n    return {}\n\n\n"
        '@named.endpoint("/six", method="GET")\n'
        "def six_version() -> str:\n    import six\n\n    return six.__version__\n"
    )
    ok(fnserve("deploy", str(app), url=env_server_url))
    response = httpx.get(f"{env_server_url}/named/six", headers=owner(env_server_url), timeout=10)
    assert response.json() == "1.17.0"

    listing = ok(fnserve("env", "ls", url=env_server_url))
    assert "sixes" in listing
    assert "named v1" in listing
    assert "KiB" in listing or "MiB" in listing

    assert "Removed environment sixes" in ok(fnserve("env", "rm", "sixes", url=env_server_url))
    assert "sixes" not in ok(fnserve("env", "ls", url=env_server_url)).split("Builds")[0]


def test_env_create_refuses_an_invalid_requirement_naming_it(env_server_url: str) -> None:
    result = fnserve("env", "create", "bad", "-p", "numpy>>2", url=env_server_url)

    assert result.returncode == 1
    assert "numpy>>2" in result.stderr
    assert "not a valid requirement" in result.stderr


def test_env_prune_removes_builds_no_running_version_uses(env_server_url: str) -> None:
    out = ok(fnserve("env", "prune", url=env_server_url))
    assert out.startswith("Removed ")

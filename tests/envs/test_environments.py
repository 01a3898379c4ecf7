"""Services with environments of their own, built for real by uv from PyPI: isolation, pins, caching, failures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _auth import owner
from _deploy import deploy_failure, deployed
from pinned import old_pins, other_pydantic, six_new, six_old, unlisted, unsatisfiable

import fnserve as fs
from fnserve.envs.runtime import server_python
from fnserve.errors import SpecError
from fnserve.settings import Settings
from fnserve.testing import run_server, wait_until


def no_state() -> dict[str, Any]:
    return {}


def service(url: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/services/{name}", headers=owner(url), timeout=10)
    response.raise_for_status()
    info: dict[str, Any] = response.json()
    return info


def build_log(url: str, name: str) -> str:
    response = httpx.get(f"{url}/v1/services/{name}/build-log", headers=owner(url), timeout=10)
    response.raise_for_status()
    return response.text


def test_two_services_pinning_two_versions_each_see_their_own(env_server_url: str) -> None:
    with deployed(six_old, env_server_url) as old, deployed(six_new, env_server_url) as new:
        assert old.version() == "1.16.0"
        assert new.version() == "1.17.0"
        assert list(new.count(up_to=3)) == ["1\n", "2\n", "3\n"]  # an async generator, its docstring's YAML read there


def test_service_pins_win_over_the_packages_of_the_replica_runtime(env_server_url: str) -> None:
    """The runtime itself runs on pydantic 2 and msgpack 1.2; the service asked for pydantic 1 and msgpack 1.0.2 and
    gets them, while its arguments are still coerced ("3" → 3) and its answers framed by the runtime's own."""
    with deployed(old_pins, env_server_url) as client:
        answer = client.versions(count="3")

    assert answer["pydantic"].startswith("1.10.")
    assert answer["msgpack"] == "1.0.2"
    assert answer["item"] == {"count": 3}


def test_service_pinning_another_pydantic_2_gets_it_while_the_runtime_keeps_its_own(env_server_url: str) -> None:
    with deployed(other_pydantic, env_server_url) as client:
        answer = client.versions(count="4")

    assert answer["pydantic"] == "2.10.6"
    assert answer["pydantic_core"] == "2.27.2"
    assert answer["item"] == '{"count":4}'


def test_import_of_a_package_the_service_did_not_list_fails_in_its_status(env_server_url: str) -> None:
    """httpx is in the server's environment; the service did not list it, so its replica cannot import it."""
    failed = deploy_failure(unlisted, env_server_url, match="ModuleNotFoundError: No module named 'httpx'")

    assert failed.code == "deployment_failed"
    info = service(env_server_url, "unlisted")
    assert info["state"] == "ERROR"
    assert "No module named 'httpx'" in info["reason"]


def test_build_failure_is_error_with_the_resolvers_message_and_is_not_retried(env_server_url: str) -> None:
    """1. numpy==0.0.0 does not exist: the version goes to ERROR with uv's own words and a hint.
    2. The build log holds the same lines; no second attempt follows (the log has one resolution)."""
    failed = deploy_failure(unsatisfiable, env_server_url, match="No solution found")

    assert "numpy==0.0.0" in failed.message
    assert "Check the package names and versions" in failed.message
    info = service(env_server_url, "unsatisfiable")
    assert info["state"] == "ERROR"
    assert "No solution found" in info["reason"]
    time.sleep(0.5)  # a retry loop would have started again by now
    log = build_log(env_server_url, "unsatisfiable")
    assert log.count("Resolving 1 requirements") == 1
    assert "numpy==0.0.0" in log
    assert "Build failed" in log


def test_second_service_with_the_same_set_reuses_the_build(env_server_url: str) -> None:
    """six_new and unlisted ask for the same set: the second deploy finds it built, and its log says so."""
    with deployed(six_new, env_server_url):
        pass
    log = build_log(env_server_url, "six_new")
    assert "Ready in" in log

    deploy_failure(unlisted, env_server_url, match="httpx")  # it fails later, in its replica: the env was found
    assert "built before: no build" in build_log(env_server_url, "unlisted")
    listing = httpx.get(f"{env_server_url}/v1/environments", headers=owner(env_server_url), timeout=10).json()
    shared = [build for build in listing["builds"] if build["requirements"] == ["six==1.17.0"]]
    assert len(shared) == 1
    assert set(shared[0]["used_by"]) >= {"six_new v1", "unlisted v1"}
    assert shared[0]["size_bytes"] > 0


def test_concurrent_deploys_of_one_new_set_share_one_build(tmp_path: Path) -> None:
    """Two services with the same requirements, deployed at once on a server with an empty environments folder:
    one build, both waiting on it (their logs end with the same "Installed" line), one venv."""
    first = fs.service(name="share_a", requirements=["six==1.16.0"])(no_state)
    second = fs.service(name="share_b", requirements=["six==1.16.0"])(no_state)
    envs = tmp_path / "envs"
    with run_server(home=tmp_path / "home", settings=Settings(envs_dir=envs), graceful_shutdown_s=2) as url:
        deployments = [fs.deploy(svc, url=url)() for svc in (first, second)]
        try:
            for deployment in deployments:
                deployment.wait(timeout_s=60)
        finally:
            for deployment in deployments:
                deployment.close()
        logs = [build_log(url, name) for name in ("share_a", "share_b")]

    installed = [[line for line in log.splitlines() if line.startswith("Installed 1 packages in")] for log in logs]
    assert len(installed[0]) == 1
    assert installed[0] == installed[1]
    assert len([path for path in envs.iterdir() if (path / "fnserve-env.json").is_file()]) == 1


def test_lock_is_stored_with_the_version_and_used_after_a_restart(tmp_path: Path, envs_dir: Path) -> None:
    """1. The first deploy resolves and stores the lock with the version.
    2. After a restart with an empty environments folder, the replica runs the same packages, from that lock (the
       log says so), without resolving again."""
    home = tmp_path / "home"
    with run_server(home=home, settings=Settings(envs_dir=envs_dir), graceful_shutdown_s=2) as url:
        with deployed(six_old, url):
            pass
        version = service(url, "six_old")["versions"][-1]
        assert version["environment"]["requirements"] == ["six==1.16.0"]
        assert "six==1.16.0" in version["environment"]["lock"]

    with run_server(home=home, settings=Settings(envs_dir=tmp_path / "fresh"), graceful_shutdown_s=2) as url:
        wait_until(lambda: service(url, "six_old")["state"] == "ACTIVE", timeout_s=60)
        client = fs.get_deployment("six_old", url=url)
        with client:
            assert client.version() == "1.16.0"
        log = build_log(url, "six_old")
    assert "Installing the lock stored with this version" in log
    assert "Resolving" not in log.split("Installing the lock stored with this version")[-1]


def test_build_killed_half_way_is_never_used_and_prune_removes_it(tmp_path: Path) -> None:
    """A server killed during a build leaves a `.tmp` folder: the next deploy builds anew beside it, and
    `prune` removes it."""
    envs = tmp_path / "envs"
    half_built = envs / ".0123456789abcdef.4242.tmp"
    (half_built / "bin").mkdir(parents=True)
    (half_built / "bin" / "python").write_text("not an interpreter")
    with run_server(home=tmp_path / "home", settings=Settings(envs_dir=envs), graceful_shutdown_s=2) as url:
        with deployed(six_old, url) as client:
            assert client.version() == "1.16.0"
        pruned = httpx.post(f"{url}/v1/environments/prune", headers=owner(url), timeout=30).json()

    assert half_built.name in pruned["removed"]
    assert not half_built.exists()


def test_deploy_answers_building_at_once_with_its_progress(tmp_path: Path) -> None:
    """The deploy's own answer is BUILDING (an empty environments folder: the build has not started yet), with
    a reason; once the build is done, its replica starts and the service is ACTIVE."""
    with run_server(home=tmp_path / "home", settings=Settings(envs_dir=tmp_path / "envs")) as url:
        deployment = fs.deploy(six_new, url=url)()
        try:
            state, reason = deployment.state, deployment.reason
            deployment.wait(timeout_s=60)
            final = service(url, "six_new")["state"]
        finally:
            deployment.close()

    assert state == "BUILDING"
    assert reason
    assert final == "ACTIVE"


@pytest.mark.parametrize(
    ("requirements", "match"),
    [
        (["numpy>>2"], r"requirements\[0\] 'numpy>>2' is not a valid requirement"),
        (["six", ""], r"requirements\[1\] must be a non-empty string"),
        ("six", "must be a list"),
        (["pkg @ https://example.com/pkg.whl"], "installs from a URL"),
    ],
)
def test_invalid_requirements_fail_at_decoration_naming_the_entry(requirements: Any, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        fs.service(requirements=requirements)(no_state)


def test_requirements_and_a_named_environment_together_are_refused() -> None:
    with pytest.raises(SpecError, match="give requirements or env='ml', not both"):
        fs.service(requirements=["six"], env="ml")(no_state)


def test_a_named_environment_given_as_an_object_is_created_when_the_service_deploys(env_server_url: str) -> None:
    """1. `fs.Environment(...)` as `env=`: deploying creates it on the server, and the version copies its packages.
    2. Changing the environment later does not change the version already deployed."""
    sixes = fs.Environment(name="old-six", requirements=["six==1.16.0"])

    def version() -> str:
        import six

        return str(six.__version__)

    named = fs.service(name="named_env", env=sixes)(no_state)
    named.endpoint("/version", method="GET")(version)
    with deployed(named, env_server_url) as client:
        assert client.version() == "1.16.0"
        fs.Environment(name="old-six", requirements=["six==1.17.0"]).create(url=env_server_url)
        assert client.version() == "1.16.0"
        environment = service(env_server_url, "named_env")["versions"][-1]["environment"]

    assert environment["env"] == "old-six"
    assert environment["requirements"] == ["six==1.16.0"]
    listing = httpx.get(f"{env_server_url}/v1/environments", headers=owner(env_server_url), timeout=10).json()
    assert {"name": "old-six", "requirements": ["six==1.17.0"]}.items() <= listing["environments"][0].items()


def test_deploying_a_service_that_names_an_unknown_environment_says_how_to_create_it(env_server_url: str) -> None:
    unknown = fs.service(name="unknown_env", env="nowhere")(no_state)

    with pytest.raises(fs.errors.NotFound, match="fnserve env create nowhere"):
        fs.deploy(unknown, url=env_server_url)()


def test_a_python_version_alone_gets_an_environment_with_nothing_but_the_runtime(env_server_url: str) -> None:
    def where() -> dict[str, Any]:
        import importlib.util
        import sys

        return {"prefix": sys.prefix, "has_httpx": importlib.util.find_spec("httpx") is not None}

    bare = fs.service(name="bare_env", python=server_python())(no_state)
    bare.endpoint("/where", method="GET")(where)
    with deployed(bare, env_server_url) as client:
        answer = client.where()

    assert "test-envs" in answer["prefix"]
    assert answer["has_httpx"] is False

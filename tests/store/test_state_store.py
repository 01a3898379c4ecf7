"""The state store on SQLite and on a real PostgreSQL: functions, versions, deployments, and restarts."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from echo import echo

import fnserve as fs
from fnserve.errors import NotFound, ServiceExists, ServiceNotFound
from fnserve.settings import Settings
from fnserve.spec import DeploymentSpec, ServiceSpec
from fnserve.store import DeploymentState, StateStore
from fnserve.testing import run_server

CODE = "0" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fnserve.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    store = StateStore(store_url)
    try:
        yield store
    finally:
        with store.engine.begin() as connection:  # the PostgreSQL database is shared by the session
            for table in ("jobs", "assets", "servers", "tokens", "deployments", "versions", "functions"):
                connection.exec_driver_sql(f"DELETE FROM {table}")
        store.close()


def spec(name: str = "greeter") -> ServiceSpec:
    return ServiceSpec(name=name, route_prefix=f"/{name}")


def add(store: StateStore, name: str = "greeter") -> tuple[str, str]:
    function, version = store.add_version(
        spec(name), code_kind="pickle", code_sha256=CODE, entrypoint=None, init_sha256=None
    )
    return function.function_id, version.version_id


def test_versions_are_numbered_per_function(store: StateStore) -> None:
    function_id, first = add(store)
    same_function, second = add(store)
    _, other = add(store, "other")
    assert same_function == function_id
    assert [v.number for v in store.list_versions(function_id)] == [1, 2]
    assert store.get_version(function_id, 2).version_id == second
    assert store.get_version(function_id, first).number == 1
    assert store.get_function("greeter").function_id == function_id
    with pytest.raises(ServiceNotFound):
        store.get_function("nope")
    with pytest.raises(NotFound):
        store.get_version(function_id, 7)


def test_deployment_lifecycle_and_conflicts(store: StateStore) -> None:
    function_id, version_id = add(store)
    version = store.get_version(function_id, version_id)
    deployment = store.create_deployment(version, DeploymentSpec(min_instances=2, max_instances=3))
    assert deployment.state is DeploymentState.deploying
    with pytest.raises(ServiceExists):
        store.create_deployment(version, DeploymentSpec())
    with pytest.raises(ServiceExists, match="undeploy it first"):
        store.delete_version(version)
    store.set_deployment_state(version_id, DeploymentState.inactive, "undeployed")
    again = store.create_deployment(version, DeploymentSpec(weight=3))
    assert again.deployment_id == deployment.deployment_id
    assert again.spec.weight == 3
    assert again.deployed_at >= deployment.deployed_at
    store.set_deployment_state(version_id, DeploymentState.inactive, "undeployed")
    store.delete_version(version)
    assert store.list_versions(function_id) == []
    _, replacement = add(store)
    assert store.get_version(function_id, replacement).number == 2  # numbers are never reused


def test_disabling_keeps_each_deployed_version_as_disabled_with_its_spec(store: StateStore) -> None:
    """
    1. Versions 1 (deployed, 2 to 3 instances), 2 (undeployed) and 3 (never deployed) of one function.
    2. Disabling it marks version 1 DISABLED with the reason and its spec, leaves 2 INACTIVE; again, nothing changes.
    3. A version deployed while it is disabled is registered DISABLED.
    4. Enabling clears the flag and leaves the DISABLED deployments for the supervisor to start.
    """
    function_id, first = add(store)
    _, second = add(store)
    _, third = add(store)
    store.create_deployment(store.get_version(function_id, first), DeploymentSpec(min_instances=2, max_instances=3))
    store.create_deployment(store.get_version(function_id, second), DeploymentSpec())
    store.set_deployment_state(second, DeploymentState.inactive, "undeployed")
    assert store.get_function(function_id).disabled_at is None

    disabled = store.disable_function(function_id, "disabled by the owner")
    assert disabled.disabled
    assert disabled.disabled_at is not None
    kept = store.get_deployment(first)
    assert kept is not None
    assert (kept.state, kept.reason, kept.spec.min_instances, kept.spec.max_instances) == (
        DeploymentState.disabled,
        "disabled by the owner",
        2,
        3,
    )
    assert {d.version_id: d.state for d in store.list_deployments(function_id)} == {
        first: DeploymentState.disabled,
        second: DeploymentState.inactive,
    }
    assert store.disable_function(function_id, "again").disabled_at == disabled.disabled_at
    assert store.get_deployment(first) == kept

    later = store.create_deployment(
        store.get_version(function_id, third), DeploymentSpec(), state=DeploymentState.disabled, reason="later"
    )
    assert (later.state, later.reason) == (DeploymentState.disabled, "later")

    enabled = store.enable_function(function_id)
    assert (enabled.disabled, enabled.disabled_at) == (False, None)
    assert [d.state for d in store.list_deployments(function_id)] == [
        DeploymentState.disabled,
        DeploymentState.inactive,
        DeploymentState.disabled,
    ]


def test_store_reopens_with_everything_kept(store_url: str, store: StateStore) -> None:
    function_id, version_id = add(store)
    store.create_deployment(store.get_version(function_id, version_id), DeploymentSpec())
    store.set_deployment_state(version_id, DeploymentState.active, None)
    reopened = StateStore(store_url)  # runs the migrations again: a no-op on a current database
    try:
        assert reopened.get_function(function_id).name == "greeter"
        deployment = reopened.get_deployment(version_id)
        assert deployment is not None
        assert deployment.state is DeploymentState.active
    finally:
        reopened.close()


def test_deployment_spec_refuses_max_below_min() -> None:
    with pytest.raises(fs.errors.SpecError, match=r"max_instances \(1\) must be >= min_instances \(2\)"):
        DeploymentSpec(min_instances=2, max_instances=1)


def test_server_on_postgresql_restores_deployments_after_restart(postgres_url: str, tmp_path: Path) -> None:
    """
    1. Run a server whose store is PostgreSQL; deploy echo.
    2. Stop it and start another on the same database (and home, for the code).
    3. The same function id and version come back ACTIVE and serve.
    """
    settings = Settings(db_url=postgres_url)
    home = tmp_path / "home"
    with run_server(home=home, settings=settings, graceful_shutdown_s=2) as url, fs.deploy(echo, url=url)() as first:
        first.wait(timeout_s=30)
        service_id, version = first.service_id, first.refresh()._info["version_id"]
    with (
        run_server(home=home, settings=settings, graceful_shutdown_s=2) as url,
        fs.get_deployment("echo", url=url, wait=30) as restored,
    ):
        assert restored.service_id == service_id
        assert restored._info["version_id"] == version
        assert restored.echo(text="back")["text"] == "back"
        restored.teardown()


def test_concurrent_registrations_get_distinct_numbers(store: StateStore) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: add(store), range(8)))
    function_ids = {function_id for function_id, _ in results}
    assert len(function_ids) == 1
    assert sorted(v.number for v in store.list_versions(function_ids.pop())) == list(range(1, 9))

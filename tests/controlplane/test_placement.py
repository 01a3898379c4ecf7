"""Resources through a real server: GPU placement with fake GPUs (each replica sees only its own, a replica that does
not fit waits in DEPLOYING with the reason and starts once one is freed), deploys that can never fit refused at once,
blue/green without room for both versions, memory limits enforced, and real GPUs when the host has one."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _auth import owner
from _deploy import deploy_failure
from gpu_env import any_gpu, four_gpus, gpu_a, gpu_b, gpu_c, h100, half_a, half_b, huge_memory, no_gpu
from memory_hog import memory_hog, memory_hog_init

import fnserve as fs
from fnserve.errors import ValidationFailed
from fnserve.settings import Settings
from fnserve.testing import run_server, wait_until

HTTP_TIMEOUT = httpx.Timeout(10.0)
WAITING = "waiting for resources: needs 1 GPU of type A100, 0 free"


@contextlib.contextmanager
def gpu_server(tmp_path: Path, gpus: str, **settings: Any) -> Iterator[str]:
    """A server on a host that pretends to have `gpus` ("A100:2")."""
    with run_server(
        home=tmp_path / "home", settings=Settings(fake_gpus=gpus, **settings), graceful_shutdown_s=2
    ) as url:
        yield url


def ready(service: fs.Service[Any], url: str) -> fs.Deployment:
    return fs.deploy(service, url=url)().wait(timeout_s=30)


def resources(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/resources", headers=owner(url), timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    view: dict[str, Any] = response.json()
    return view


def gpu_holders(url: str) -> dict[int, list[str]]:
    """Each GPU's replicas, by the service their id starts with."""
    return {gpu["index"]: [r.split("-v")[0] for r in gpu["replicas"]] for gpu in resources(url)["gpus"]}


# -- GPUs -----------------------------------------------------------------------------------------------------------


def test_gpu_replicas_see_their_own_gpu_and_a_third_waits_until_one_is_freed(tmp_path: Path) -> None:
    """
    1. On a host with 2 (fake) A100s, gpu_a's replica sees CUDA_VISIBLE_DEVICES "0", gpu_b's "1".
    2. gpu_c, needing one more, stays DEPLOYING with the reason, on the service and on its waiting replica (no pid).
    3. /v1/resources and /v1/gpus show both GPUs held.
    4. Tear gpu_a down: gpu_c gets GPU 0, becomes ACTIVE, and its reason is gone.
    """
    with gpu_server(tmp_path, "A100:2") as url, fs.Client(url) as client, contextlib.ExitStack() as handles:
        first = handles.enter_context(ready(gpu_a, url))
        second = handles.enter_context(ready(gpu_b, url))
        env_a, env_b = first.env(), second.env()
        assert (env_a["CUDA_VISIBLE_DEVICES"], env_b["CUDA_VISIBLE_DEVICES"]) == ("0", "1")
        assert env_a["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"

        third = handles.enter_context(fs.deploy(gpu_c, url=url)())
        waiting = wait_until(
            lambda: (info := client.get_service("gpu_c"))["reason"] == WAITING and info, timeout_s=10, what="a reason"
        )
        assert waiting["state"] == "DEPLOYING"
        (replica,) = waiting["replicas"]
        assert (replica["state"], replica["pid"], replica["reason"]) == ("STARTING", None, WAITING)
        assert gpu_holders(url) == {0: ["gpu_a"], 1: ["gpu_b"]}
        gpus = httpx.get(f"{url}/v1/gpus", headers=owner(url), timeout=HTTP_TIMEOUT).json()
        assert gpus == [{"gpu_type": "A100", "count": 2, "memory_bytes": None, "free": 0}]

        client.teardown("gpu_a")

        third.wait(timeout_s=30)
        assert third.env()["CUDA_VISIBLE_DEVICES"] == "0"
        assert client.get_service("gpu_c")["reason"] is None
        assert gpu_holders(url) == {0: ["gpu_c"], 1: ["gpu_b"]}


def test_replica_without_gpus_sees_none_and_gets_thread_counts_for_its_cpus(tmp_path: Path) -> None:
    with gpu_server(tmp_path, "A100:2") as url, ready(no_gpu, url) as deployment:
        env = deployment.env()

    assert env["CUDA_VISIBLE_DEVICES"] == ""  # set, and empty: no GPU can be taken by accident
    assert (env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) == ("2", "2")


def test_fractional_gpus_share_one_gpu(tmp_path: Path) -> None:
    with gpu_server(tmp_path, "A100:1") as url, ready(half_a, url) as first, ready(half_b, url) as second:
        assert first.env()["CUDA_VISIBLE_DEVICES"] == second.env()["CUDA_VISIBLE_DEVICES"] == "0"
        assert gpu_holders(url) == {0: ["half_a", "half_b"]}
        assert resources(url)["gpus"][0]["allocated"] == 1.0


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        (four_gpus, "needs 4 GPUs of type A100, this host has 2"),
        (h100, "needs 1 GPU of type H100, this host has none (it has 2 × A100)"),
        (huge_memory, "needs 100 TB of memory, this host has"),
    ],
    ids=["too-many-gpus", "no-such-gpu-type", "too-much-memory"],
)
def test_deploy_that_can_never_fit_is_refused_at_once(tmp_path: Path, service: fs.Service[Any], reason: str) -> None:
    """The deploy answers 422 naming what is missing and the fix; nothing was registered or started."""
    with gpu_server(tmp_path, "A100:2") as url, fs.Client(url) as client:
        with pytest.raises(ValidationFailed) as refused:
            fs.deploy(service, url=url)()

        assert reason in refused.value.message
        assert f"Service {service.name!r} cannot run on this host" in refused.value.message
        assert "GET /v1/resources" in refused.value.message
        assert client.list_services() == []


def test_deployment_api_refuses_more_replicas_than_fit(tmp_path: Path) -> None:
    """
    1. Deploy gpu_a, then DELETE its deployment. POST one with min_instances 3 on 2 GPUs: 422, the field named.
    2. With min_instances 2 it is accepted, and both replicas become READY.
    """
    with gpu_server(tmp_path, "A100:2") as url, ready(gpu_a, url):
        path = f"{url}/v1/deployments/functions/gpu_a/versions/1"
        with httpx.Client(headers=owner(url), timeout=HTTP_TIMEOUT) as http:
            assert http.delete(path).status_code == 200

            refused = http.post(path, json={"min_instances": 3, "max_instances": 3})
            accepted = http.post(path, json={"min_instances": 2, "max_instances": 2})

            assert refused.status_code == 422
            error = refused.json()["error"]
            assert error["code"] == "validation_error"
            assert "3 replicas that each need 1 GPU of type A100, 1 CPU do not fit at once; 2 do" in error["message"]
            assert error["details"]["fields"][0]["field"] == "resources"
            assert accepted.status_code == 201
            wait_until(lambda: http.get(path).json()["replicas_ready"] == 2, timeout_s=30, what="two ready replicas")


def test_redeploy_without_room_for_both_versions_stops_the_old_one_first(tmp_path: Path) -> None:
    """
    1. On a host with one GPU, version 1 of any_gpu holds it.
    2. Deploy again: version 2 cannot run beside version 1 (blue/green would wait for ever), so version 1 is stopped
       first, with the reason, and version 2 gets the GPU and becomes ACTIVE.
    """
    with gpu_server(tmp_path, "A100:1") as url, fs.Client(url) as client:
        ready(any_gpu, url).close()

        with ready(any_gpu, url) as second:
            assert second.env()["CUDA_VISIBLE_DEVICES"] == "0"

        info = client.get_service("any_gpu")
        assert (info["version"], info["state"]) == (2, "ACTIVE")
        assert [(v["version"], v["state"]) for v in info["versions"]] == [(1, "INACTIVE"), (2, "ACTIVE")]


def test_deployment_restored_where_it_no_longer_fits_is_in_error(tmp_path: Path) -> None:
    """A server restarted on a host without the GPUs its deployment needs puts it in ERROR, saying why, rather than
    leave it waiting for ever."""
    with gpu_server(tmp_path, "A100:1") as url:
        ready(gpu_a, url).close()

    with gpu_server(tmp_path, "") as url, fs.Client(url) as client:
        info = client.get_service("gpu_a")

    assert info["state"] == "ERROR"
    assert info["reason"] == "cannot run on this host: needs 1 GPU of type A100, this host has none"


# -- memory ---------------------------------------------------------------------------------------------------------


def test_replica_over_its_memory_limit_is_stopped_with_that_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """
    1. memory_hog has Resources(memory="200MB"); its /hog endpoint holds 400 MB.
    2. The call fails with 502 replica_crashed whose message says the replica went over its memory limit.
    3. The service lists the stopped replica with that reason, the server log says it, and a new replica serves.
    """
    with (
        caplog.at_level(logging.WARNING, logger="fnserve.supervisor"),
        run_server(home=tmp_path / "home", graceful_shutdown_s=2) as url,
        fs.Client(url) as client,
        ready(memory_hog, url) as deployment,
    ):
        pid = deployment.pid()

        response = httpx.post(f"{deployment.address}/hog", json={"mb": 400}, timeout=HTTP_TIMEOUT)

        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "replica_crashed"
        assert "over its memory limit of 200 MB (raise Resources(memory=...) if it needs more)" in error["message"]
        info = wait_until(lambda: (info := client.get_service("memory_hog"))["failed_replicas"] and info, timeout_s=10)
        reason = info["failed_replicas"][0]["reason"]
        assert reason.startswith("used ")
        assert "MB, over its memory limit of 200 MB" in reason
        assert "over its memory limit of 200 MB" in caplog.text
        new_pid = wait_until(
            lambda: deployment.state == "ACTIVE" and deployment.refresh() and deployment.pid(), timeout_s=30
        )
        assert new_pid != pid


def test_initializer_over_its_memory_limit_fails_the_deployment_with_that_reason(tmp_path: Path) -> None:
    settings = Settings(max_replica_failures=2)
    with run_server(home=tmp_path / "home", settings=settings, graceful_shutdown_s=2) as url:
        failed = deploy_failure(memory_hog_init, url, match="over its memory limit of 200 MB")

    assert "replica failed to start: used " in failed.message


# -- a real GPU ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs an NVIDIA GPU and its driver (nvidia-smi)")
def test_real_gpu_is_detected_and_given_to_one_replica(tmp_path: Path) -> None:
    with run_server(home=tmp_path / "home", graceful_shutdown_s=2) as url, ready(any_gpu, url) as deployment:
        assert deployment.env()["CUDA_VISIBLE_DEVICES"] == "0"
        gpus = resources(url)["gpus"]
        assert gpus[0]["allocated"] == 1.0

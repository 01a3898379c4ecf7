"""Pre-started workers over a real server: kept only while a deployment autoscales, and a replica made from one
gets its own GPUs, thread counts, id and log file, as a freshly started one does."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from _auth import owner
from _processes import standby_workers
from gpu_env import elastic_gpu, no_gpu

import fnserve as fs
from fnserve.settings import Settings
from fnserve.testing import run_server, wait_until


def standby_pids() -> set[int]:
    """This process's standby workers (the test server runs in a thread of it)."""
    return standby_workers(os.getpid())


def test_a_replica_from_a_standby_worker_gets_its_own_environment_and_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with run_server(home=home, settings=Settings(fake_gpus="A100:2"), graceful_shutdown_s=2) as url:
        with fs.deploy(no_gpu, url=url)() as deployment:
            deployment.wait(timeout_s=60)
        assert standby_pids() == set()  # fixed replica counts start nothing ahead of need

        with fs.deploy(elastic_gpu, url=url)() as deployment:
            deployment.wait(timeout_s=60)
        standby = wait_until(standby_pids, timeout_s=30, what="a standby worker for the autoscaled service")
        assert len(standby) == 1

        answer = httpx.get(f"{url}/elastic_gpu/env", timeout=60).json()  # from zero: a replica starts now
        assert {answer["pid"]} == standby
        assert answer["CUDA_VISIBLE_DEVICES"] in ("0", "1")
        assert answer["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert answer["OMP_NUM_THREADS"] == "1"
        info = httpx.get(f"{url}/v1/services/elastic_gpu", headers=owner(url)).json()
        [replica] = info["replicas"]
        assert answer["FNSERVE_REPLICA_ID"] == replica["replica_id"]
        assert replica["pid"] == answer["pid"]
        log = home / "logs" / "elastic_gpu" / f"{replica['replica_id']}.log"
        assert "elastic_gpu initialized" in log.read_text()

        refilled = wait_until(lambda: standby_pids() - standby, timeout_s=30, what="a new standby worker")
        assert answer["pid"] not in refilled

        httpx.delete(f"{url}/v1/services/elastic_gpu", headers=owner(url)).raise_for_status()
        wait_until(lambda: not standby_pids(), timeout_s=30, what="the standby workers to stop")

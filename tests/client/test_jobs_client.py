"""Jobs and assets from Python: `deployment.route.submit()`, the `Job` handle, and the `Client` methods behind them,
against a real server with tests/apps/jobs_client.py deployed."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from jobs_client import jobs_client

import fnserve as fs
from fnserve.client.api import AsyncClient, Client
from fnserve.client.jobs import AsyncJob, Job
from fnserve.errors import (
    AssetNotFound,
    FunctionError,
    JobCancelled,
    JobConflict,
    JobNotFound,
    ValidationFailed,
)
from fnserve.settings import Settings
from fnserve.testing import run_server, wait_until

RESULT_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def jobs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module, with jobsclient deployed (one replica, auth on: the owner key calls it)."""
    with run_server(home=tmp_path_factory.mktemp("jobs-home"), graceful_shutdown_s=2) as url:
        with fs.deploy(jobs_client, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


@pytest.fixture
def deployment(jobs_url: str) -> Iterator[fs.Deployment]:
    with fs.get_deployment("jobsclient", url=jobs_url) as handle:
        yield handle


@pytest.fixture
def api(jobs_url: str) -> Iterator[Client]:
    with Client(jobs_url) as client:
        yield client


def test_submit_returns_a_job_whose_result_is_the_output(deployment: fs.Deployment) -> None:
    """
    1. `deployment.quick.submit(message="hi")` returns a Job at once, IN_QUEUE (or already further).
    2. `.result()` waits for it and returns the endpoint's output; `.status()` is then COMPLETED.
    3. `.info()` is the whole job: its service, endpoint, attempt and timings; `repr` shows id and status.
    """
    job = deployment.quick.submit(message="hi")

    assert isinstance(job, Job)
    assert job.id.startswith("job-")
    assert job.result(timeout_s=RESULT_TIMEOUT_S) == "quick: hi"
    assert job.status() == "COMPLETED"
    info = job.info()
    assert info["id"] == job.id
    assert info["service"] == "jobsclient"
    assert info["endpoint"] == "POST /quick"
    assert info["attempt"] == 1
    assert info["output"] == "quick: hi"
    assert info["error"] is None
    assert repr(job) == f"<Job {job.id} COMPLETED>"


def test_submit_fills_path_parameters_and_sends_a_get_endpoints_arguments(deployment: fs.Deployment) -> None:
    job = deployment.items.submit(item_id=7, q="z")

    assert job.result(timeout_s=RESULT_TIMEOUT_S) == {"item_id": 7, "q": "z"}
    assert job.info()["endpoint"] == "GET /items/{item_id}"


def test_submit_raises_validation_failed_at_once_for_bad_arguments(deployment: fs.Deployment) -> None:
    with pytest.raises(ValidationFailed, match="message"):
        deployment.quick.submit()
    with pytest.raises(ValidationFailed, match="seconds"):
        deployment.sleep.submit(seconds="soon")


def test_result_raises_the_jobs_error_as_its_class_when_the_endpoint_raises(deployment: fs.Deployment) -> None:
    job = deployment.fail.submit(number=3)

    with pytest.raises(FunctionError, match="ValueError: bad number 3") as raised:
        job.result(timeout_s=RESULT_TIMEOUT_S)
    assert raised.value.details is not None
    assert raised.value.details["job_id"] == job.id
    assert job.info()["status"] == "FAILED"
    assert job.info()["error"]["code"] == "function_error"


def test_result_raises_timeout_error_when_the_job_does_not_finish_in_time(deployment: fs.Deployment) -> None:
    job = deployment.sleep.submit(seconds=5)

    with pytest.raises(TimeoutError, match=rf"Job {job.id} is still (IN_QUEUE|IN_PROGRESS).* after 0.3 s"):
        job.result(timeout_s=0.3)
    assert job.result(timeout_s=RESULT_TIMEOUT_S) == 5


def test_result_waits_with_long_polls_not_a_busy_loop(jobs_url: str) -> None:
    """A job that runs 1.5 s is awaited with one long poll (the server holds `/status?wait_s=` until it ends)."""
    polls: list[str] = []
    with Client(jobs_url) as client:
        client._http.event_hooks["request"].append(lambda request: polls.append(str(request.url)))
        job = Job(client, "/jobsclient", client.submit("/jobsclient", "/sleep", arguments={"seconds": 1.5})["id"])

        assert job.result(timeout_s=RESULT_TIMEOUT_S) == 1.5

    status_polls = [url for url in polls if "/status/" in url]
    assert len(status_polls) == 1, polls
    asked_s = float(status_polls[0].rsplit("wait_s=", 1)[1])
    assert RESULT_TIMEOUT_S - 1 < asked_s <= RESULT_TIMEOUT_S


def test_retry_queues_a_failed_job_again_and_it_can_then_complete(deployment: fs.Deployment, tmp_path: Path) -> None:
    """
    1. /flaky fails on its first call: the job is FAILED with function_error (no retry on exceptions by default).
    2. `.retry()` returns the job, back IN_QUEUE; its result is then the second attempt's.
    3. Retrying the now COMPLETED job raises JobConflict.
    """
    job = deployment.flaky.submit(marker=str(tmp_path / "failed-once"))
    with pytest.raises(FunctionError, match="first call fails"):
        job.result(timeout_s=RESULT_TIMEOUT_S)

    retried = job.retry()

    assert retried["id"] == job.id
    assert retried["status"] in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    assert retried["retried"] == 1
    assert job.result(timeout_s=RESULT_TIMEOUT_S) == {"attempt": 1}
    with pytest.raises(JobConflict):
        job.retry()


def test_cancel_stops_a_running_job_and_its_result_raises(server_url: str) -> None:
    """
    1. A job sleeping 30 s starts (IN_PROGRESS).
    2. `.cancel()` returns it CANCELLED; `.result()` raises its error at once, naming the job.
    3. Cancelling it again is a JobConflict: a cancelled job is finished.
    """
    with fs.deploy(jobs_client, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)
        job = deployment.sleep.submit(seconds=30)
        wait_until(lambda: job.status() == "IN_PROGRESS", timeout_s=10, what="the job running")

        cancelled = job.cancel()

        assert cancelled["status"] == "CANCELLED"
        assert repr(job) == f"<Job {job.id} CANCELLED>"
        with pytest.raises(JobCancelled, match=job.id) as raised:
            job.result(timeout_s=1)
        assert raised.value.details is not None
        assert raised.value.details["status"] == "CANCELLED"
        with pytest.raises(JobConflict):
            job.cancel()


def test_job_handle_by_id_reads_a_job_submitted_elsewhere(deployment: fs.Deployment, api: Client) -> None:
    queued = api.submit("/jobsclient", "/quick", arguments={"message": "raw"})

    assert queued["status"] == "IN_QUEUE"
    job = deployment.job(queued["id"])
    assert repr(job) == f"<Job {queued['id']} UNKNOWN>"
    assert job.result(timeout_s=RESULT_TIMEOUT_S) == "quick: raw"
    with pytest.raises(JobNotFound):
        deployment.job("job-doesnotexist").status()


def test_client_job_methods_answer_as_docs_jobs_md_says(api: Client) -> None:
    """
    1. `job(prefix, id, wait_s=)` long-polls until the job is finished.
    2. `run_sync` returns the finished job in one call.
    3. `list_jobs(service=)` lists both, newest first, without outputs; `queue` and `service_health` count them.
    """
    queued = api.submit("/jobsclient", "/quick", "POST", {"message": "polled"})
    finished = api.job("/jobsclient", queued["id"], wait_s=RESULT_TIMEOUT_S)
    assert finished["status"] == "COMPLETED"
    assert finished["output"] == "quick: polled"

    synced = api.run_sync("/jobsclient", "/quick", "POST", {"message": "sync"}, wait_s=RESULT_TIMEOUT_S)
    assert synced["status"] == "COMPLETED"
    assert synced["output"] == "quick: sync"

    listed = api.list_jobs(service="jobsclient", limit=500)
    ids = [job["id"] for job in listed]
    assert ids.index(synced["id"]) < ids.index(queued["id"])
    assert all("output" not in job or job["output"] is None for job in listed)
    assert queued["id"] in [job["id"] for job in api.list_jobs(service="jobsclient", status="COMPLETED")]
    assert queued["id"] not in [job["id"] for job in api.list_jobs(service="jobsclient", status="FAILED")]

    queue = api.queue("jobsclient")
    assert queue["service"] == "jobsclient"
    assert queue["max_queued"] == 10_000
    assert {"queued", "running", "versions"} <= set(queue)
    health = api.service_health("/jobsclient")
    assert health["jobs"]["completed"] >= 2
    assert {"idle", "running", "starting"} <= set(health["workers"])
    assert api.purge_queue("/jobsclient") == {"removed": 0}


@pytest.mark.anyio
async def test_async_route_method_submit_gives_an_async_job(jobs_url: str) -> None:
    async with fs.get_deployment("jobsclient", url=jobs_url) as deployment:
        job = await deployment.aquick.submit(message="async")

        assert isinstance(job, AsyncJob)
        assert await job.result(timeout_s=RESULT_TIMEOUT_S) == "quick: async"
        assert await job.status() == "COMPLETED"
        again = deployment.ajob(job.id)
        assert (await again.info())["output"] == "quick: async"
        failed = await deployment.asubmit("/fail", number=4)
        with pytest.raises(FunctionError, match="bad number 4"):
            await failed.result(timeout_s=RESULT_TIMEOUT_S)


def test_upload_asset_from_bytes_and_from_a_file_then_list_get_download(api: Client, tmp_path: Path) -> None:
    """
    1. Bytes upload as an UPLOADED asset with their size and sha256.
    2. A 3 MiB file uploads streamed in chunks; the progress callback adds up to its size.
    3. Both are listed and readable; downloading gives the same bytes, into memory or a file.
    """
    small = api.upload_asset(b"hello assets", "text/plain", "greeting")
    assert small["asset_id"].startswith("ast-")
    assert small["state"] == "UPLOADED"
    assert small["size"] == len(b"hello assets")
    assert small["sha256"] == hashlib.sha256(b"hello assets").hexdigest()

    path = tmp_path / "big.bin"
    data = bytes(range(256)) * (3 * 4096)
    path.write_bytes(data)
    sent: list[int] = []
    big = api.upload_asset(path, on_progress=sent.append)
    assert len(sent) == 3
    assert sum(sent) == len(data) == big["size"]
    assert big["sha256"] == hashlib.sha256(data).hexdigest()
    assert big["content_type"] == "application/octet-stream"

    assert {small["asset_id"], big["asset_id"]} <= {asset["asset_id"] for asset in api.list_assets()}
    assert api.get_asset(small["asset_id"])["description"] == "greeting"
    assert api.download_asset(small["asset_id"]) == b"hello assets"
    written = api.download_asset(big["asset_id"], tmp_path / "copy.bin")
    assert written.read_bytes() == data
    assert api.download_asset(big["asset_id"], tmp_path) == tmp_path / big["asset_id"]


def test_endpoints_read_the_assets_a_call_or_a_job_names(deployment: fs.Deployment, api: Client) -> None:
    """
    1. Two uploaded assets, named by a synchronous call, reach the endpoint's `_assets` as files, in order.
    2. The same through `Deployment.call(..., assets=...)` and through a job.
    3. Deleted, an asset is gone: reading it or naming it raises AssetNotFound, naming it.
    """
    first = api.upload_asset(b"first asset")["asset_id"]
    second = api.upload_asset(b"second")["asset_id"]
    expected = [[first, ">11:first asset"], [second, ">6:second"]]

    assert deployment.read(prefix=">", _assets=[first, second]) == expected
    assert deployment.call("/read", assets=[first, second], prefix=">") == expected
    assert deployment.read.submit(prefix=">", _assets=[first, second]).result(timeout_s=RESULT_TIMEOUT_S) == expected

    api.delete_asset(first)
    with pytest.raises(AssetNotFound, match=first):
        api.get_asset(first)
    with pytest.raises(AssetNotFound, match=first):
        deployment.read(prefix=">", _assets=[first])
    with pytest.raises(AssetNotFound, match=first):
        deployment.read.submit(prefix=">", _assets=[first])


def test_assets_must_be_a_list_of_ids(deployment: fs.Deployment) -> None:
    with pytest.raises(TypeError, match=r"use \['ast-1'\]"):
        deployment.read(prefix="", _assets="ast-1")


@pytest.mark.anyio
async def test_async_client_uploads_a_file_and_downloads_it(jobs_url: str, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("async notes\n" * 100_000)
    async with AsyncClient(jobs_url) as client:
        asset = await client.upload_asset(path, description="async")
        assert asset["content_type"] == "text/plain"
        assert asset["size"] == path.stat().st_size
        assert await client.download_asset(asset["asset_id"]) == path.read_bytes()
        assert asset["asset_id"] in {listed["asset_id"] for listed in await client.list_assets()}
        await client.delete_asset(asset["asset_id"])
        with pytest.raises(AssetNotFound):
            await client.get_asset(asset["asset_id"])


@pytest.fixture(scope="module")
def small_inline_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose inline result limit is 1000 bytes, with jobsclient deployed."""
    home = tmp_path_factory.mktemp("inline-home")
    with run_server(home=home, settings=Settings(inline_result_bytes=1000), graceful_shutdown_s=2) as url:
        with fs.deploy(jobs_client, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


@pytest.fixture
async def async_small_inline(small_inline_url: str) -> AsyncIterator[fs.Deployment]:
    async with fs.get_deployment("jobsclient", url=small_inline_url) as deployment:
        yield deployment


def test_a_result_over_the_inline_limit_is_downloaded_by_calls_and_jobs(small_inline_url: str) -> None:
    """
    1. A synchronous call whose result is over the limit answers 302 to its download URL; the client follows it
       with the same credentials and returns the decoded result.
    2. As a job, the result is not inline: `output_url` is set, and `.result()` downloads it.
    """
    with fs.get_deployment("jobsclient", url=small_inline_url) as deployment:
        assert deployment.big(size=5000) == "x" * 5000

        job = deployment.big.submit(size=5000)
        info = job.wait(timeout_s=RESULT_TIMEOUT_S)
        assert info["status"] == "COMPLETED"
        assert info["output"] is None
        assert info["output_url"]
        assert job.result() == "x" * 5000
        assert deployment.big(size=10) == "x" * 10


@pytest.mark.anyio
async def test_async_calls_and_jobs_download_a_result_over_the_inline_limit(
    async_small_inline: fs.Deployment,
) -> None:
    assert await async_small_inline.abig(size=3000) == "x" * 3000
    job = await async_small_inline.abig.submit(size=3000)
    assert await job.result(timeout_s=RESULT_TIMEOUT_S) == "x" * 3000

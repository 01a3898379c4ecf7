"""`fnserve jobs ...`, `fnserve assets ...` and `fnserve invoke --asset`, run as the installed console script
against a real server with tests/apps/jobs_client.py deployed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from _cli import fnserve
from jobs_client import jobs_client

import fnserve as fs
from fnserve.client.api import Client
from fnserve.testing import run_server, wait_until

JOB_ID = re.compile(r"^(job-\S+)$", re.MULTILINE)
ASSET_ID = re.compile(r"^(ast-\S+)\s", re.MULTILINE)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def job_id_in(output: str) -> str:
    match = JOB_ID.search(output)
    assert match, f"no job id in:\n{output}"
    return match.group(1)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module, with jobsclient deployed."""
    with run_server(home=tmp_path_factory.mktemp("jobs-cli-home"), graceful_shutdown_s=2) as server_url:
        with fs.deploy(jobs_client, url=server_url)() as deployment:
            deployment.wait(timeout_s=30)
        yield server_url


def test_jobs_submit_wait_prints_the_id_then_the_completed_job(url: str) -> None:
    output = ok(fnserve("jobs", "submit", "jobsclient", "/quick", "-d", '{"message": "hi"}', "--wait", url=url))

    assert output.splitlines()[0].startswith("job-")
    assert "COMPLETED" in output
    assert "POST /quick" in output
    assert '"quick: hi"' in output


def test_jobs_submit_then_get_and_ls_show_the_job(url: str) -> None:
    """
    1. `jobs submit` prints the job id alone, for scripts.
    2. `jobs get NAME ID --wait 20` shows it COMPLETED with its output; `--json` prints the job as JSON.
    3. `jobs ls NAME` lists it with service, endpoint and status; `--status FAILED` leaves it out.
    """
    submitted = ok(fnserve("jobs", "submit", "jobsclient", "/items/5", "-d", '{"q": "z"}', url=url))
    job_id = submitted.strip()
    assert JOB_ID.fullmatch(job_id)

    shown = ok(fnserve("jobs", "get", "jobsclient", job_id, "--wait", "20", url=url))
    assert f"Job {job_id}" in shown
    assert "COMPLETED" in shown
    assert "GET /items/{item_id}" in shown
    assert '"item_id": 5' in shown
    as_json = orjson.loads(ok(fnserve("jobs", "get", "jobsclient", job_id, "--json", url=url)))
    assert as_json["output"] == {"item_id": 5, "q": "z"}

    listed = ok(fnserve("jobs", "ls", "jobsclient", url=url))
    row = next(line for line in listed.splitlines() if job_id in line)
    assert "jobsclient" in row
    assert "GET /items/{item_id}" in row
    assert "COMPLETED" in row
    assert job_id not in ok(fnserve("jobs", "ls", "--status", "FAILED", url=url))


def test_jobs_submit_wait_exits_nonzero_showing_the_error_when_the_job_fails(url: str) -> None:
    result = fnserve("jobs", "submit", "jobsclient", "/fail", "-d", '{"number": 3}', "--wait", url=url)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout
    assert "ValueError: bad number 3" in result.stdout
    assert "(function_error)" in result.stdout
    assert "Traceback" not in result.stderr


def test_jobs_cancel_then_cancel_again_is_a_conflict(url: str) -> None:
    job_id = ok(fnserve("jobs", "submit", "jobsclient", "/sleep", "-d", '{"seconds": 30}', url=url)).strip()
    with Client(url) as client:
        wait_until(
            lambda: client.job("/jobsclient", job_id)["status"] == "IN_PROGRESS", timeout_s=10, what="the job running"
        )

    cancelled = ok(fnserve("jobs", "cancel", "jobsclient", job_id, url=url))
    assert cancelled.strip() == f"Job {job_id} is CANCELLED"

    again = fnserve("jobs", "cancel", "jobsclient", job_id, url=url)
    assert again.returncode != 0
    assert "(job_conflict)" in again.stderr
    assert "Traceback" not in again.stderr


def test_jobs_retry_runs_a_failed_job_again(url: str, tmp_path: Path) -> None:
    marker = orjson.dumps({"marker": str(tmp_path / "failed-once")}).decode()
    failed = fnserve("jobs", "submit", "jobsclient", "/flaky", "-d", marker, "--wait", url=url)
    assert failed.returncode == 1
    job_id = job_id_in(failed.stdout)
    assert "first call fails" in failed.stdout

    retried = ok(fnserve("jobs", "retry", "jobsclient", job_id, url=url))
    assert re.fullmatch(rf"Job {job_id} is (IN_QUEUE|IN_PROGRESS|COMPLETED)", retried.strip())
    shown = ok(fnserve("jobs", "get", "jobsclient", job_id, "--wait", "20", url=url))
    assert "COMPLETED" in shown
    assert "retried 1" in shown


def test_jobs_get_exits_nonzero_naming_the_code_when_the_job_is_unknown(url: str) -> None:
    result = fnserve("jobs", "get", "jobsclient", "job-nope", url=url)

    assert result.returncode != 0
    assert "(job_not_found)" in result.stderr
    assert "Traceback" not in result.stderr


def test_assets_upload_ls_invoke_download_and_rm(url: str, tmp_path: Path) -> None:
    """
    1. `assets upload FILE --description D` prints the new asset id; `assets ls` lists it UPLOADED.
    2. `invoke --asset ID` and `jobs submit --asset ID --wait` reach an endpoint that reads the file.
    3. `assets download ID -o FILE` writes the same bytes.
    4. `assets rm ID` deletes it: `ls` no longer lists it, and naming it is an asset_not_found error.
    """
    path = tmp_path / "notes.txt"
    path.write_text("cli asset text")
    uploaded = ok(fnserve("assets", "upload", str(path), "--description", "my notes", url=url))
    match = ASSET_ID.search(uploaded)
    assert match, uploaded
    asset_id = match.group(1)
    assert "notes.txt, 14 B" in uploaded

    row = next(line for line in ok(fnserve("assets", "ls", url=url)).splitlines() if asset_id in line)
    assert "UPLOADED" in row
    assert "my notes" in row
    assert "text/plain" in row

    invoked = ok(fnserve("invoke", "jobsclient", "/read", "-d", '{"prefix": "="}', "--asset", asset_id, url=url))
    assert orjson.loads(invoked) == [[asset_id, "=14:cli asset text"]]
    submitted = ok(
        fnserve(
            "jobs", "submit", "jobsclient", "/read", "-d", '{"prefix": "#"}', "--asset", asset_id, "--wait", url=url
        )
    )
    assert "#14:cli asset text" in submitted

    copy = tmp_path / "copy.txt"
    ok(fnserve("assets", "download", asset_id, "-o", str(copy), url=url))
    assert copy.read_text() == "cli asset text"

    assert ok(fnserve("assets", "rm", asset_id, url=url)).strip() == f"Asset {asset_id} is deleted"
    assert asset_id not in ok(fnserve("assets", "ls", url=url))
    missing = fnserve("invoke", "jobsclient", "/read", "-d", '{"prefix": ""}', "--asset", asset_id, url=url)
    assert missing.returncode != 0
    assert "(asset_not_found)" in missing.stderr


def test_assets_upload_streams_a_large_file(url: str, tmp_path: Path) -> None:
    path = tmp_path / "large.bin"
    path.write_bytes(b"\0" * (3 * 1024 * 1024))

    uploaded = ok(fnserve("assets", "upload", str(path), url=url))

    assert "large.bin, 3.0 MiB" in uploaded
    match = ASSET_ID.search(uploaded)
    assert match, uploaded
    with Client(url) as client:
        assert client.get_asset(match.group(1))["size"] == 3 * 1024 * 1024


def test_assets_upload_refuses_a_missing_file_before_contacting_the_server(tmp_path: Path) -> None:
    result = fnserve("assets", "upload", str(tmp_path / "nope.bin"), url="http://127.0.0.1:9")

    assert result.returncode != 0
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(
    "command", [["jobs", "ls"], ["jobs", "get", "jobsclient", "job-1"], ["assets", "ls"], ["assets", "rm", "ast-1"]]
)
def test_jobs_and_assets_commands_exit_nonzero_when_no_server_answers(refused_url: str, command: list[str]) -> None:
    result = fnserve(*command, url=refused_url)

    assert result.returncode != 0
    assert f"no fnserve server answers at {refused_url}" in result.stderr
    assert "Traceback" not in result.stderr

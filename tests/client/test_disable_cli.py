"""Disabling a service and enabling it again from the command line: `fnserve disable NAME`, `fnserve enable NAME`."""

from __future__ import annotations

from pathlib import Path

import httpx
from _cli import fnserve
from test_cli_versions import answers, project


def test_disable_and_enable_from_the_command_line(server_url: str, tmp_path: Path) -> None:
    """
    1. Deploy `which` (a); `fnserve disable which` says it is DISABLED and how to enable it; calls answer 503.
    2. `fnserve ls` and `fnserve status which` show it DISABLED, with the reason.
    3. `fnserve deploy` of (b) meanwhile exits 1, saying the version is registered, not started.
    4. `fnserve enable which` waits until ACTIVE and shows the panel; (b) answers.
    """
    assert fnserve("deploy", project(tmp_path, "a"), url=server_url).returncode == 0
    disabled = fnserve("disable", "which", url=server_url)
    assert disabled.returncode == 0, disabled.stderr
    assert "which is DISABLED" in disabled.stdout
    assert "`fnserve enable which` starts it again" in disabled.stdout
    refused = httpx.post(f"{server_url}/which/version", timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "service_disabled")

    listed = fnserve("ls", url=server_url)
    (row,) = [line for line in listed.stdout.splitlines() if line.lstrip("│ ").startswith("which")]
    assert "DISABLED" in row
    status = fnserve("status", "which", url=server_url)
    assert status.returncode == 0
    assert "DISABLED" in status.stdout
    assert "disabled by the owner; `fnserve enable which` starts it again" in status.stdout

    redeployed = fnserve("deploy", project(tmp_path, "b"), url=server_url)
    assert redeployed.returncode == 1
    assert "which is disabled: version 2 is registered but not started; `fnserve enable which`" in redeployed.stderr
    assert "Traceback" not in redeployed.stderr

    enabled = fnserve("enable", "which", url=server_url)
    assert enabled.returncode == 0, enabled.stderr
    assert "ACTIVE" in enabled.stdout
    assert "curl" in enabled.stdout
    assert answers(server_url) == {"b"}


def test_disable_of_an_unknown_service_fails_clearly(server_url: str) -> None:
    result = fnserve("disable", "nope", url=server_url)
    assert result.returncode != 0
    assert "No function named 'nope'" in result.stderr
    assert "Traceback" not in result.stderr

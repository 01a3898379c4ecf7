"""Disabling a service and enabling it again from Python: `disable()` / `enable()` on `Client`, `AsyncClient` and a
`Deployment`."""

from __future__ import annotations

import pytest
from _deploy import deployed
from echo import echo

import fnserve as fs
from fnserve.errors import ServiceDisabled


def test_a_deployment_handle_disables_and_enables_its_service(server_url: str) -> None:
    """
    1. `deployment.disable()`: DISABLED; a call, a job submission and `fs.get_deployment(wait=...)` raise
       ServiceDisabled naming the fix.
    2. `deployment.enable().wait()`: ACTIVE, and it answers again.
    """
    with deployed(echo, server_url) as deployment:
        assert deployment.disable().state == "DISABLED"
        with pytest.raises(ServiceDisabled, match="`fnserve enable echo` starts it again"):
            deployment.echo(text="x")
        with pytest.raises(ServiceDisabled):
            deployment.echo.submit(text="x")
        with pytest.raises(ServiceDisabled, match=r"its version 1 does not run; `fnserve enable echo` \(or"):
            fs.get_deployment("echo", url=server_url, wait=5)
        assert deployment.enable().wait(timeout_s=30).state == "ACTIVE"
        assert deployment.echo(text="back")["text"] == "back"


@pytest.mark.anyio
async def test_the_async_client_disables_and_enables(server_url: str) -> None:
    with deployed(echo, server_url):
        async with fs.AsyncClient(server_url) as client:
            assert (await client.disable("echo"))["state"] == "DISABLED"
            assert (await client.get_service("echo"))["disabled"] is True
            enabled = await client.enable("echo")
            assert (enabled["disabled"], enabled["state"] in ("DEPLOYING", "ACTIVE")) == (False, True)

"""Deploying a test service from Python and closing its handle afterwards: one that must come up, or one that
must fail."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

import fnserve as fs
from fnserve.errors import DeploymentFailed


@contextlib.contextmanager
def deployed(service: fs.Service[Any], url: str, **init_kwargs: Any) -> Iterator[fs.Deployment]:
    """Deploy `service`, wait until ACTIVE, and close the handle's connections afterwards."""
    deployment = fs.deploy(service, url=url)(**init_kwargs)
    try:
        yield deployment.wait(timeout_s=30)
    finally:
        deployment.close()


def deploy_failure(service: fs.Service[Any], url: str, *, match: str) -> DeploymentFailed:
    """Deploy `service`, expecting it to fail: the DeploymentFailed that `wait()` raised, its message matching."""
    deployment = fs.deploy(service, url=url)()
    try:
        with pytest.raises(DeploymentFailed, match=match) as failed:
            deployment.wait(timeout_s=30)
    finally:
        deployment.close()
    return failed.value

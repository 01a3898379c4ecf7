"""Deploying a test service from Python and closing its handle afterwards, for tests that deploy several."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import fnserve as fs


@contextlib.contextmanager
def deployed(service: fs.Service[Any], url: str, **init_kwargs: Any) -> Iterator[fs.Deployment]:
    """Deploy `service`, wait until ACTIVE, and close the handle's connections afterwards."""
    deployment = fs.deploy(service, url=url)(**init_kwargs)
    try:
        yield deployment.wait(timeout_s=30)
    finally:
        deployment.close()

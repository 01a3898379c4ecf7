"""One-shot HTTP requests for readiness checks, correctness checks and the deploy-to-first-response poller.

Plain `http.client` with a timeout on every call: the harness must not share a client library with the
servers it measures, and a refused connection is an answer ("not up yet"), not an error.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True, kw_only=True)
class Probe:
    """A request that answers 200 once a server (or a service on it) is up."""

    method: str = "GET"
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 2.0,
) -> Reply | None:
    """Send one request on a fresh connection; None when the server could not be reached or did not answer in time."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return Reply(status=response.status, body=response.read())
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def send(base_url: str, probe: Probe, *, timeout_s: float = 2.0) -> Reply | None:
    """`request` for a `Probe`."""
    return request(base_url, probe.method, probe.path, body=probe.body, headers=probe.headers, timeout_s=timeout_s)

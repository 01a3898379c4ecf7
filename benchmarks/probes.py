"""One-shot HTTP requests for readiness checks, correctness checks and the deploy-to-first-response poller, and
the time-to-first-chunk probe of streaming scenarios (wrk times whole answers only).

Plain `http.client` with a timeout on every call: the harness must not share a client library with the
servers it measures, and a refused connection is an answer ("not up yet"), not an error.
"""

from __future__ import annotations

import http.client
import math
import time
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


class ProbeError(RuntimeError):
    """A probe's request failed or was answered with something other than 200; the message says which."""


@dataclass(frozen=True)
class FirstChunk:
    """Seconds from sending a streaming request to reading the first bytes of its body, over `samples` requests."""

    samples: int
    p50_ms: float
    p99_ms: float


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` 0.5 for p50)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def time_first_chunk(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    samples: int,
    timeout_s: float = 10.0,
) -> FirstChunk:
    """Send the request `samples` times, one after another on one keep-alive connection, and time each from
    sending it to reading its first body bytes; each answer is then read to its end before the next request.

    `http.client` adds its own fraction of a millisecond to every time; the times compare targets with one another.

    Raises:
        ProbeError: A request failed, or was answered with a status other than 200.
    """
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    times: list[float] = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=dict(headers))
            response = conn.getresponse()
            first = response.read1(1)  # returns as soon as the first chunk (or any body byte) is in
            elapsed = time.perf_counter() - started
            rest = response.read()
            if response.status != 200 or not first:
                raise ProbeError(f"{method} {path} answered {response.status} {(first + rest)[:200]!r}")
            times.append(elapsed * 1000)
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeError(f"{method} {base_url}{path} failed: {exc!r}") from None
    finally:
        conn.close()
    return FirstChunk(samples=samples, p50_ms=_percentile(times, 0.5), p99_ms=_percentile(times, 0.99))

"""Scenarios: the request a benchmark sends, what a correct answer looks like, and the service that serves it.

A scenario is data only. Targets decide how to serve it (the bare app has a route per scenario,
fnserve deploys `service_entrypoint`), and `wrk.py` turns it into a Lua script.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One kind of request, loaded at several concurrencies against every target.

    Attributes:
        name: Short label used in tables and `--scenarios`.
        description: One line for RESULTS.md.
        method: HTTP method wrk sends.
        path: Request path, the same on every target (`/noop/noop`).
        body: Request body, sent as is.
        headers: Extra request headers.
        expected_body: The exact response body a correct server returns; checked once before loading.
        service_entrypoint: `file.py:object` that platform targets deploy to serve this scenario.
        service_name: The service name that entrypoint declares (its control-plane name).
    """

    name: str
    description: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    expected_body: bytes
    service_entrypoint: str
    service_name: str


# The fnserve targets' owner key, sent with every request (the bare app ignores it): auth is on while measured.
BENCHMARK_OWNER_KEY = "fsk_benchmark-" + "0" * 30
AUTHORIZATION = {"Authorization": f"Bearer {BENCHMARK_OWNER_KEY}"}

NOOP = Scenario(
    name="noop",
    description='POST `{}` to a no-op endpoint that returns `"ok"`: the platform\'s own overhead.',
    method="POST",
    path="/noop/noop",
    body=b"{}",
    headers={"Content-Type": "application/json", **AUTHORIZATION},
    expected_body=b'"ok"',
    service_entrypoint="benchmarks/apps/noop.py:noop",
    service_name="noop",
)

SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in (NOOP,)}

"""Property-based test of the gateway: schemathesis calls a deployed service's endpoints from the OpenAPI document the
service serves itself, with valid and invalid arguments. No answer may be a 5xx or a 4xx outside the error envelope,
and no replica may crash."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from _auth import owner
from _fuzz import REQUEST_TIMEOUT_S, Case, fuzz
from counted import counted
from echo import echo

import fnserve as fs
from fnserve.testing import run_server

MAX_EXAMPLES = 30  # per operation: a few seconds in all
SERVICES = (echo, counted)
# Paths of echo whose code raises on purpose: their 500 `function_error` is the user's error, reported as designed.
RAISE_BY_DESIGN = {"/boom", "/unserializable"}


def no_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case) -> None:
    """No 5xx, but the `function_error` of an endpoint written to raise."""
    if response.status_code < 500:
        return
    assert case.path in RAISE_BY_DESIGN, f"{response.status_code} from {case.method} {case.path}: {response.text}"
    assert response.json()["error"]["code"] == "function_error", response.text


CHECKS = [no_server_error, schemathesis.checks.content_type_conformance, schemathesis.checks.negative_data_rejection]


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_server(home=tmp_path_factory.mktemp("gateway-fuzz"), graceful_shutdown_s=2) as url:
        for service in SERVICES:
            with fs.deploy(service, url=url)() as deployment:
                deployment.wait(timeout_s=30)
        yield url


def replica_pids(url: str, name: str) -> list[int]:
    service = httpx.get(f"{url}/v1/services/{name}", headers=owner(url), timeout=REQUEST_TIMEOUT_S).json()
    return sorted(replica["pid"] for replica in service["replicas"] if replica["state"] == "READY")


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_service_endpoints_answer_without_5xx_and_no_replica_crashes(
    fuzz_url: str, service: fs.Service[object]
) -> None:
    """1. Load the service's own `/docs/specs.json`; every operation gets MAX_EXAMPLES requests, valid and invalid.
    2. Each answer is no 5xx, has the content type the document says, and a 4xx is the error envelope; invalid
       arguments are refused.
    3. The replicas that served before the run are the ones serving after it (none crashed or was replaced)."""
    prefix = service.spec.route_prefix
    before = replica_pids(fuzz_url, service.name)
    config = schemathesis.Config.from_dict({"base-url": fuzz_url + prefix, "request-timeout": REQUEST_TIMEOUT_S})
    schema = schemathesis.openapi.from_url(f"{fuzz_url}{prefix}/docs/specs.json", config=config)

    failures = fuzz(schema, checks=CHECKS, max_examples=MAX_EXAMPLES)

    assert not failures, "\n\n".join(f"{label}:\n{failure}" for label, failure in failures.items())
    assert replica_pids(fuzz_url, service.name) == before

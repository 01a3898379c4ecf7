"""Property-based test of the `/v1` API: schemathesis generates valid and invalid requests from the served OpenAPI,
and no answer may be a 5xx, a 4xx outside the error envelope, or a response the OpenAPI does not describe."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from _auth import owner
from _fuzz import REQUEST_TIMEOUT_S, Case, fuzz
from schemathesis.specs.openapi.schemas import OpenApiSchema

MAX_EXAMPLES = 25  # per operation, valid and invalid requests together: about 10 s in all on 2 cores
SLOW_ANSWER_S = 5.0  # a control-plane call answers at once (a deploy too: it returns DEPLOYING)
# Reads, then writes, then deletes from the least to the most destructive, so that most operations still meet the
# deployed function and its version.
ORDER = ("GET", "HEAD", "POST", "PUT", "DELETE /v1/deployments/", "DELETE /v1/services/", "DELETE /v1/functions/")
# Schemathesis's checks, but `positive_data_acceptance`: some rules cannot be written in JSON schema ("instance_type
# or resources, not both", a service name's pattern), so a schema-valid body may rightly get a 422.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.max_response_time,
]


@pytest.fixture(scope="module")
def api_schema(echo_url: str) -> OpenApiSchema:  # echo_url: this module's own server; the fuzzer may delete anything
    """The served OpenAPI. Half of the path parameters name the deployed function and version (by name, id or
    number), the other half are generated, so routes are exercised with both real and unknown resources."""
    function = httpx.get(f"{echo_url}/v1/functions/echo", headers=owner(echo_url), timeout=REQUEST_TIMEOUT_S).json()
    functions = ["echo", function["function_id"], "nope"]
    versions = ["1", function["versions"][0]["version_id"], "2"]
    config = schemathesis.Config.from_dict(
        {
            "base-url": echo_url,
            "headers": owner(echo_url),
            "request-timeout": REQUEST_TIMEOUT_S,
            "checks": {"max_response_time": SLOW_ANSWER_S},
            "dictionaries": {"functions": {"values": functions}, "versions": {"values": versions}},
            "parameters": {
                "path.function_ref": {"dictionary": "functions", "probability": 0.5},
                "path.name_or_id": {"dictionary": "functions", "probability": 0.5},
                "path.version_ref": {"dictionary": "versions", "probability": 0.5},
            },
        }
    )
    return schemathesis.openapi.from_url(f"{echo_url}/v1/openapi.json", config=config, timeout=REQUEST_TIMEOUT_S)


def _cap_instances(case: Case) -> Case:
    """Lower a valid `min_instances` (`69` or `69.0`) to 1: a fuzz test on a 2-core box must not start 256 replicas."""
    if isinstance(case.body, dict):
        count = case.body.get("min_instances")
        if isinstance(count, int | float) and not isinstance(count, bool) and 1 < count <= 256 and count % 1 == 0:
            case.body["min_instances"] = 1
    return case


def test_v1_api_answers_without_5xx_and_with_the_error_envelope(api_schema: OpenApiSchema) -> None:
    """1. Each operation, reads first and deletes last, gets MAX_EXAMPLES requests, valid and invalid mixed (an
       operation with nothing to make invalid gets valid ones only).
    2. Each answer passes schemathesis's CHECKS and `error_envelope`.
    3. The first failing request of every operation is reported, with a curl command to reproduce it."""
    failures = fuzz(api_schema, checks=CHECKS, max_examples=MAX_EXAMPLES, order=ORDER, prepare=_cap_instances)
    assert not failures, "\n\n".join(f"{label}:\n{failure}" for label, failure in failures.items())

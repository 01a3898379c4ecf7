"""An invalid deployment spec gets a 422 whose details name the field, nested ones included."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _auth import owner


@pytest.mark.parametrize(
    ("spec", "field", "rule"),
    [
        ({"min_instances": 2, "max_instances": 1}, "body.max_instances", "must be >= min_instances"),
        ({"instance_type": "cpu.small", "resources": {"num_cpus": 1}}, "body.resources", "not both"),
        ({"resources": {"memory": "2 parsecs"}}, "body.resources.memory", "must be a size like"),
        ({"resources": {"bogus": 1}}, "body.resources.bogus", "Extra inputs are not permitted"),
    ],
)
def test_deployment_spec_error_names_the_field(echo_url: str, spec: dict[str, Any], field: str, rule: str) -> None:
    response = httpx.post(
        f"{echo_url}/v1/deployments/functions/echo/versions/1", json=spec, headers=owner(echo_url), timeout=10
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [problem["field"] for problem in error["details"]["fields"]] == [field]
    assert rule in error["message"]

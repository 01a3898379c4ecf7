"""The `/v1` request and response bodies (they make the control plane's OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from fnserve.spec import ServiceSpec


class CodeRef(BaseModel):
    """Where a service's code is: an uploaded project archive or a cloudpickled object."""

    kind: Literal["archive", "pickle"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    entrypoint: str | None = Field(
        default=None, max_length=300, description="module:attribute inside the archive (archives only)"
    )


class DeployRequest(BaseModel):
    spec: ServiceSpec
    code: CodeRef
    init_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="cloudpickled (args, kwargs) for the initializer"
    )


class EndpointInfo(BaseModel):
    method: str
    path: str
    streaming: bool
    url: str
    description: str


class ReplicaInfo(BaseModel):
    replica_id: str
    state: str
    pid: int | None
    in_flight: int
    started_at: float
    ready_at: float | None
    exit_code: int | None
    reason: str | None


class ServiceInfo(BaseModel):
    service_id: str
    name: str
    state: str
    reason: str | None
    description: str
    route_prefix: str
    url: str
    auth: bool
    replicas_desired: int
    replicas_ready: int
    replicas: list[ReplicaInfo]
    endpoints: list[EndpointInfo]
    api: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class ArtifactInfo(BaseModel):
    sha256: str
    size: int
    created: bool

"""The `/v1` request and response bodies (they make the control plane's OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from fnserve.envs.builder import BuildProgress
from fnserve.envs.requirements import EnvironmentSpec
from fnserve.spec import DeploymentSpec, Resources, ServiceSpec

SHA256 = r"^[0-9a-f]{64}$"


class CodeRef(BaseModel):
    """Where a version's code is: an uploaded project archive or a cloudpickled object."""

    kind: Literal["archive", "pickle"]
    sha256: str = Field(pattern=SHA256)
    entrypoint: str | None = Field(
        default=None, max_length=300, description="module:attribute inside the archive (archives only)"
    )


class ShownArguments(BaseModel):
    """The initializer's arguments as `/info` shows them: JSON values, others as their `str()` (500 characters)."""

    args: list[Any] = Field(default_factory=list, max_length=1000)
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=1000)


class VersionRequest(BaseModel):
    """A new version of a function: its spec (the spec's name names the function) and its code."""

    spec: ServiceSpec
    code: CodeRef
    init_sha256: str | None = Field(
        default=None, pattern=SHA256, description="cloudpickled (args, kwargs) for the initializer"
    )
    init_shown: ShownArguments | None = Field(default=None, description="the same arguments, for `/info` to show")
    tags: list[str] | None = Field(default=None, max_length=32)


class DeployRequest(VersionRequest):
    """Register a version and deploy it at once (what `fnserve deploy` and `fs.deploy` send)."""

    keep_old: bool = Field(
        default=False, description="keep the versions already deployed (traffic split) instead of replacing them"
    )


class RollbackRequest(BaseModel):
    to: int | None = Field(default=None, ge=1, description="the version to serve again (default: the previous one)")


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
    cold_start_ms: float | None = Field(default=None, description="process start to READY (initializer done)")
    exit_code: int | None
    reason: str | None
    models: list[str] = Field(
        default_factory=list,
        description="the multiplexed models (`@fs.multiplexed`) it holds or is loading, least recently used first",
    )


class DeploymentInfo(BaseModel):
    deployment_id: str
    function_id: str
    version_id: str
    version: int
    state: str
    reason: str | None
    spec: DeploymentSpec
    resources: Resources
    replicas_ready: int
    replicas: list[ReplicaInfo]
    created_at: datetime
    updated_at: datetime


class EnvironmentInfo(BaseModel):
    """The packages a version runs with (docs/ENVIRONMENTS.md)."""

    requirements: list[str]
    python: str
    env: str | None = Field(default=None, description="the named environment they were copied from")
    lock: str | None = Field(default=None, description="what its first build resolved them to; null until then")

    @classmethod
    def of(cls, environment: EnvironmentSpec | None) -> EnvironmentInfo | None:
        return None if environment is None else cls(**environment.to_json())


class BuildInfo(BaseModel):
    """Where the build of a BUILDING deployment's environment stands."""

    phase: str = Field(description="resolving, installing or done")
    done: int
    total: int
    text: str

    @classmethod
    def of(cls, progress: BuildProgress) -> BuildInfo:
        return cls(phase=progress.phase, done=progress.done, total=progress.total, text=progress.text)


class VersionInfo(BaseModel):
    version_id: str
    function_id: str
    version: int
    state: str
    spec: ServiceSpec
    code: CodeRef
    api: dict[str, Any] | None
    created_at: datetime
    environment: EnvironmentInfo | None = Field(default=None, description="null: the server's own environment")


class FunctionInfo(BaseModel):
    function_id: str
    name: str
    description: str
    tags: list[str]
    route_prefix: str | None
    versions: list[VersionInfo]
    created_at: datetime
    updated_at: datetime


class RegisteredVersion(BaseModel):
    function: FunctionInfo
    version: VersionInfo


class ServiceVersionSummary(BaseModel):
    version: int
    version_id: str
    state: str
    weight: int | None
    replicas_ready: int
    environment: EnvironmentInfo | None = None


class ServiceInfo(BaseModel):
    """A function seen as one service: its current version (the newest deployed one) and all the others."""

    service_id: str
    name: str
    state: str
    reason: str | None
    disabled: bool = Field(
        default=False, description="disabled by the owner: state DISABLED, no replicas, calls answer 503"
    )
    disabled_at: datetime | None = Field(default=None, description="when it was disabled; null: enabled")
    description: str
    version: int
    version_id: str
    route_prefix: str
    url: str
    auth: bool
    replicas_desired: int
    replicas_ready: int
    replicas: list[ReplicaInfo]
    build: BuildInfo | None = Field(default=None, description="its environment's build, while BUILDING")
    endpoints: list[EndpointInfo]
    versions: list[ServiceVersionSummary]
    api: dict[str, Any] | None
    token: str | None = Field(
        default=None, description="an invocation token made by this deploy (the service had none); shown only here"
    )
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = Field(
        default=None, description="when the service's time_limit tears it down; null: no limit, or not running"
    )
    time_left_s: float | None = Field(default=None, description="seconds until `expires_at`")
    logs_dir: str | None = Field(
        default=None, description="the folder of this service's replica logs on the server (one file per replica)"
    )
    failed_replicas: list[ReplicaInfo] = Field(
        default_factory=list,
        description="the last replicas of the current version that failed (did not start, died, or were replaced for "
        "their health), newest first, each with its reason",
    )


class TokenRequest(BaseModel):
    label: str = Field(default="", max_length=100, description="a note to tell tokens apart, e.g. 'web frontend'")


class RevokeTokenRequest(BaseModel):
    token: str = Field(min_length=5, max_length=256, description="the whole token, `fst_...`")


class TokenInfo(BaseModel):
    """A token as listed: never its secret."""

    token_id: str
    service: str
    label: str
    hint: str = Field(description="the secret's first characters")
    active: bool
    created_at: datetime
    revoked_at: datetime | None


class NewToken(TokenInfo):
    token: str = Field(description="the secret: send it as 'Authorization: Bearer <token>'; it is shown only once")


class ErrorBody(BaseModel):
    code: str = Field(description="a stable error code, e.g. 'service_not_found' (see fnserve.errors)")
    message: str
    request_id: str = Field(description="the same id as the `x-request-id` header; the server log has it too")
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer (rendered by the server's one exception handler)."""

    error: ErrorBody


# Every /v1 error is the one envelope; declaring it on each router also replaces FastAPI's `{"detail": ...}` 422.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Client error"},
    "5XX": {"model": ErrorResponse, "description": "Server error"},
}


class ArtifactInfo(BaseModel):
    sha256: str
    size: int
    created: bool


class InstanceTypeInfo(BaseModel):
    name: str
    resources: Resources


class GpuInfo(BaseModel):
    gpu_type: str
    count: int
    memory_bytes: int | None
    free: int | None = Field(default=None, description="GPUs of this type that no replica holds any part of")


class GpuAllocationInfo(BaseModel):
    index: int = Field(description="as NVML and nvidia-smi number it; what CUDA_VISIBLE_DEVICES holds")
    gpu_type: str
    memory_bytes: int | None
    allocated: float = Field(description="the part of it replicas hold, 0 to 1 (fractions share one GPU)")
    replicas: list[str]


class ReplicaAllocationInfo(BaseModel):
    replica_id: str
    num_cpus: float
    memory_bytes: int = Field(description="reserved: its Resources.memory, 0 when it set none")
    gpus: list[int]
    gpu_fraction: float = Field(description="of each GPU in `gpus`: 1 for whole GPUs")


class ResourcesInfo(BaseModel):
    """What this host offers replicas and what they hold (`GET /v1/resources`)."""

    num_cpus: float
    cpus_reserved: float
    cpus_strict: bool = Field(description="false: CPUs are shares, oversubscribed; true: replicas wait for them")
    memory_bytes: int
    memory_reserved: int
    gpus: list[GpuAllocationInfo]
    replicas: list[ReplicaAllocationInfo]


CONTENT_TYPE = r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?$"


class AssetRequest(BaseModel):
    """A new asset, before its bytes: what they are, and a note to tell assets apart."""

    content_type: str = Field(
        default="application/octet-stream",
        max_length=200,
        pattern=CONTENT_TYPE,
        description="the media type its content is served back with",
    )
    description: str = Field(default="", max_length=500)


class AssetInfo(BaseModel):
    """An uploaded input or a stored result."""

    asset_id: str
    function_id: str | None = Field(
        description="the service whose token made it (or whose result it is); null: the owner key"
    )
    kind: Literal["input", "result"]
    content_type: str
    description: str
    state: Literal["CREATED", "UPLOADED"] = Field(description="CREATED until its bytes are PUT to `upload_url`")
    size: int | None = Field(description="bytes, once UPLOADED")
    sha256: str | None = Field(description="of the content, once UPLOADED")
    upload_url: str = Field(description="PUT the bytes here (once); GET them back from the same URL")
    created_at: datetime
    uploaded_at: datetime | None
    expires_at: datetime | None = Field(
        description="when it is deleted: a result at the end of its retention, an asset still without its bytes at "
        "its upload deadline (FNSERVE_ASSET_UPLOAD_DEADLINE_S); null: kept until deleted"
    )

"""Every error fnserve raises or answers with, and the one place that renders them as JSON.

FnserveError
├── SpecError                   a service, endpoint or option is invalid (raised at decoration time)
├── InvalidRequest              400 invalid_request
│   ├── ValidationFailed        422 validation_error: arguments that do not match the type hints
│   ├── UriTooLong              414 uri_too_long: the request line or the URL path is over its limit
│   ├── UnsupportedMediaType    415 unsupported_media_type: a JSON endpoint was sent another content type
│   └── HeadersTooLarge         431 headers_too_large: a header line, the header count or the head is over its limit
├── Unauthenticated             401 unauthenticated
├── Forbidden                   403 forbidden
├── NotFound                    404 not_found: no route for this path
│   ├── ServiceNotFound         404 service_not_found
│   ├── JobNotFound             404 job_not_found
│   └── AssetNotFound           404 asset_not_found
├── MethodNotAllowed            405 method_not_allowed
├── RequestTimeout              408 request_timeout: the request's head or body came too slowly
├── ServiceExists               409 service_exists
├── JobConflict                 409 job_conflict: the job is not in a state that allows this (cancel, retry)
├── JobCancelled                409 job_cancelled: the job was cancelled (or purged) before it finished
├── AssetConflict               409 asset_conflict: the asset has no content yet, or has it already
├── PayloadTooLarge             413 payload_too_large
│   └── ArchiveTooLarge         413 archive_too_large: a code archive unpacks past a size, file-count or ratio limit
├── QueueFull                   429 queue_full
├── FunctionError               500 function_error: the user's code raised
├── InternalError               500 internal_error
├── ReplicaCrashed              502 replica_crashed
├── CommandUnreachable          502 command_unreachable: a service's command (its own HTTP server) did not answer
├── NoReplicasAvailable         503 no_replicas_available
├── EnvBuildFailed              422 env_build_failed: uv could not resolve or install the service's requirements
├── DeploymentFailed            503 deployment_failed: the service is in ERROR
├── ServiceDisabled             503 service_disabled: its owner disabled it (`fnserve enable NAME` starts it)
├── ServiceInactive             503 service_inactive: nothing of it runs (torn down, time limit); deploy it again
├── InvocationTimeout           504 invocation_timeout
├── StorageUnavailable          507 storage_unavailable: the home folder or the database is read-only or failing
│   └── StorageFull             507 storage_full: no room left there (disk full, quota, file size limit)
└── HomeInUse                   409 home_in_use: another server runs on this home folder (raised at start)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson


class FnserveError(Exception):
    """The root of every fnserve error. Subclasses set a stable `code` and an `http_status`."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        """The error envelope: `{"error": {"code", "message", "request_id", "details"?}}`."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if request_id is not None:
            body["request_id"] = request_id
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def to_json(self, request_id: str | None = None) -> bytes:
        return orjson.dumps(self.to_dict(request_id), default=str)

    def headers(self) -> dict[str, str]:
        """Response headers this error calls for, beyond the envelope (`Allow`, `WWW-Authenticate`)."""
        return {}


class SpecError(FnserveError, ValueError):
    code = "invalid_spec"
    http_status = 422


class InvalidRequest(FnserveError):
    code = "invalid_request"
    http_status = 400


class ValidationFailed(InvalidRequest):
    code = "validation_error"
    http_status = 422

    @classmethod
    def for_arguments(cls, route: str, errors: Sequence[Mapping[str, Any]]) -> ValidationFailed:
        """The 422 for arguments that do not match an endpoint's parameters, from pydantic's `errors()`.

        The gateway and the replica both answer with it, so a refusal reads the same wherever it happens.
        """
        problems = []
        for error in errors:
            field = ".".join(str(part) for part in error["loc"]) or "(body)"
            if error["type"] == "missing":
                message = "is required"
            elif error["type"] == "extra_forbidden":
                message = "is not a parameter of this endpoint"
            else:
                message = f"{error['msg']} (got {error.get('input')!r:.100})"
            problems.append({"field": field, "message": message})
        summary = "; ".join(f"`{p['field']}` {p['message']}" for p in problems)
        return cls(f"Invalid arguments for {route}: {summary}", details={"fields": problems})


class UriTooLong(InvalidRequest):
    code = "uri_too_long"
    http_status = 414


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"
    http_status = 415


class HeadersTooLarge(InvalidRequest):
    code = "headers_too_large"
    http_status = 431


class Unauthenticated(FnserveError):
    code = "unauthenticated"
    http_status = 401

    def headers(self) -> dict[str, str]:
        return {"www-authenticate": 'Bearer realm="fnserve"'}


class Forbidden(FnserveError):
    code = "forbidden"
    http_status = 403


class NotFound(FnserveError):
    code = "not_found"
    http_status = 404


class ServiceNotFound(NotFound):
    code = "service_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class AssetNotFound(NotFound):
    code = "asset_not_found"


class MethodNotAllowed(FnserveError):
    code = "method_not_allowed"
    http_status = 405

    def headers(self) -> dict[str, str]:
        return {"allow": ", ".join(self.details.get("allow", []))} if self.details else {}


class RequestTimeout(FnserveError):
    code = "request_timeout"
    http_status = 408


class ServiceExists(FnserveError):
    code = "service_exists"
    http_status = 409


class JobConflict(FnserveError):
    code = "job_conflict"
    http_status = 409


class JobCancelled(FnserveError):
    code = "job_cancelled"
    http_status = 409


class AssetConflict(FnserveError):
    code = "asset_conflict"
    http_status = 409


class PayloadTooLarge(FnserveError):
    code = "payload_too_large"
    http_status = 413

    def headers(self) -> dict[str, str]:
        # The rest of the body is not wanted: the server drops what still comes, briefly, then closes.
        return {"connection": "close"}


class ArchiveTooLarge(PayloadTooLarge):
    code = "archive_too_large"


class QueueFull(FnserveError):
    code = "queue_full"
    http_status = 429


class FunctionError(FnserveError):
    """The user's endpoint raised. The message is `Type: message`, never a traceback."""

    code = "function_error"
    http_status = 500


class InternalError(FnserveError):
    code = "internal_error"
    http_status = 500


class ReplicaCrashed(FnserveError):
    code = "replica_crashed"
    http_status = 502


class CommandUnreachable(FnserveError):
    code = "command_unreachable"
    http_status = 502


class NoReplicasAvailable(FnserveError):
    code = "no_replicas_available"
    http_status = 503


class EnvBuildFailed(FnserveError):
    code = "env_build_failed"
    http_status = 422


class DeploymentFailed(FnserveError):
    code = "deployment_failed"
    http_status = 503


class ServiceDisabled(FnserveError):
    code = "service_disabled"
    http_status = 503


class ServiceInactive(FnserveError):
    code = "service_inactive"
    http_status = 503


class InvocationTimeout(FnserveError):
    code = "invocation_timeout"
    http_status = 504


class StorageUnavailable(FnserveError):
    """A write under the home folder (or to the database) failed: read-only, unreachable or failing storage. Nothing
    was half-written, and the server goes on: the next request tries the storage again."""

    code = "storage_unavailable"
    http_status = 507


class StorageFull(StorageUnavailable):
    code = "storage_full"


class HomeInUse(FnserveError):
    """Another `fnserve server` holds this home folder; raised when a second one starts, before it touches anything."""

    code = "home_in_use"
    http_status = 409


def all_error_classes() -> list[type[FnserveError]]:
    """Every concrete error class, root included, in definition order (for the code registry test)."""
    found: list[type[FnserveError]] = [FnserveError]
    pending = list(FnserveError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def error_from_code(code: str, message: str, details: dict[str, Any] | None = None) -> FnserveError:
    """Rebuild an error received over the wire (replica protocol or HTTP) as the matching class."""
    for cls in all_error_classes():
        if cls.code == code:
            return cls(message, details=details)
    return InternalError(message, details=details)

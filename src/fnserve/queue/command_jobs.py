"""A job of a command service (docs/COMMANDS.md): its input POSTed as JSON to the command's inference URL, through the
same pass-through exchange a caller's request takes (gateway/exchange.py), and the answer kept as its result: JSON as
JSON, anything else as an asset of its media type. An answer outside 2xx fails the attempt as the user's error
(`function_error`, retried only with `retry_on_exception`), with the status and the start of the body.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from fnserve.errors import FunctionError, InvocationTimeout
from fnserve.gateway.exchange import STREAM_END
from fnserve.responses import Response
from fnserve.runtime.protocol import BODY_FRAME_BYTES, Kind
from fnserve.spec import CommandSpec, ServiceSpec

if TYPE_CHECKING:
    from fnserve.gateway.connection import ReplicaConnection
    from fnserve.store.jobs import Job

_SHOWN_BODY_CHARS = 500


def command_route(spec: ServiceSpec) -> str:
    """What a command service's job records as its route: `POST /its/inference/url`."""
    assert spec.command is not None
    return f"POST {spec.command.inference_url}"


def job_request_head(route_prefix: str, command: CommandSpec, job: Job, length: int) -> dict[str, Any]:
    """The request a job makes, as the gateway describes a caller's to a replica (gateway/passthrough.py)."""
    root = "" if route_prefix == "/" else route_prefix
    return {
        "method": "POST",
        "path": root + command.inference_url,
        "root_path": root,
        "query_string": b"",
        "headers": [
            [b"content-type", b"application/json"],
            [b"content-length", str(length).encode()],
            [b"fnserve-job-id", job.job_id.encode()],
            [b"fnserve-job-attempt", str(job.attempt).encode()],
        ],
        "client": None,
        "http_version": "1.1",
        "scheme": "http",
    }


async def run_command_job(
    connection: ReplicaConnection, route_prefix: str, command: CommandSpec, job: Job, *, reserved: bool
) -> bytes | Response:
    """One attempt of `job` on a replica of a command service: JSON bytes, or a `Response` for another answer.
    ReplicaCrashed when the replica is lost, InvocationTimeout past the job's timeout, FunctionError on a non-2xx."""
    body = job.body or b"{}"
    if reserved:
        connection.unreserve()  # the exchange takes the slot itself
    head = job_request_head(route_prefix, command, job, len(body))
    first, rest = body[:BODY_FRAME_BYTES], body[BODY_FRAME_BYTES:]
    exchange = connection.open_exchange(Kind.HTTP, head, first, bool(rest))
    try:
        async with asyncio.timeout(job.policy.timeout_s):
            if rest:
                await exchange.send_body(rest, False)
            status, headers, chunks = 0, list[Any](), list[bytes]()
            while True:
                for item in await exchange.next_items():
                    if item is STREAM_END:
                        return _result(command, status, headers, b"".join(chunks))
                    if isinstance(item, BaseException):
                        raise item
                    if item.__class__ is bytes:
                        chunks.append(item)
                    elif item.__class__ is tuple and item[0] == "start":
                        status, headers = item[1], item[2]
    except TimeoutError:
        raise InvocationTimeout(f"the command did not answer within {job.policy.timeout_s:g} s") from None
    finally:
        exchange.close()


def _result(command: CommandSpec, status: int, headers: list[Any], body: bytes) -> bytes | Response:
    content_type = next((bytes(value) for name, value in headers if bytes(name).lower() == b"content-type"), b"")
    media_type = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
    if not 200 <= status < 300:
        shown = body[:_SHOWN_BODY_CHARS].decode(errors="replace")
        raise FunctionError(
            f"the command answered {status} to POST {command.inference_url}: {shown}",
            details={"status": status},
        )
    if media_type in ("", "application/json") or media_type.endswith("+json"):
        try:
            return orjson.dumps(orjson.loads(body or b"null"))
        except orjson.JSONDecodeError:
            if media_type:
                raise FunctionError(
                    f"the command answered POST {command.inference_url} with invalid JSON: "
                    f"{body[:_SHOWN_BODY_CHARS].decode(errors='replace')}"
                ) from None
    return Response(body, media_type=media_type or "application/octet-stream", status=status)

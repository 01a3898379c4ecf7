"""Request bodies the control plane streams to disk instead of reading whole: code artifacts and asset content.

The server reads every other `/v1` body itself, up to `max_body_bytes`, before FastAPI sees it (server.py); these
routes take theirs here, a buffer at a time, into a `StreamedUpload` that counts and hashes them and refuses the
first byte past its limit (chunked bodies included: what counts is what arrives, not what `Content-Length` says).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.requests import ClientDisconnect

from fnserve.errors import InvalidRequest
from fnserve.store.uploads import StreamedUpload

# Request chunks are gathered up to this size before a thread writes them: few thread hops per upload, and at
# most this much of an upload held in memory.
WRITE_BUFFER_BYTES = 1024 * 1024

U = TypeVar("U", bound=StreamedUpload)
T = TypeVar("T")


def is_streamed_upload(method: str, path: str) -> bool:
    """Whether a `/v1` request is one of the uploads below: `PUT /v1/artifacts/{sha256}`,
    `PUT /v1/assets/{asset_id}/content`."""
    return method == "PUT" and (
        path.startswith("/v1/artifacts/") or (path.startswith("/v1/assets/") and path.endswith("/content"))
    )


async def receive_upload(request: Request, upload: U, finish: Callable[[U], T], *, what: str) -> T:
    """Stream the request body into `upload`, then `finish(upload)` in a thread (it moves the file into place).

    PayloadTooLarge as soon as the body passes `upload.max_bytes` (at once when its `Content-Length` says it will);
    InvalidRequest when the client stops before the end. The temporary file is removed on every failure.
    """
    try:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > upload.max_bytes:
            raise upload.too_large()
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if upload.size + len(pending) > upload.max_bytes:
                raise upload.too_large()
            if len(pending) >= WRITE_BUFFER_BYTES:
                await asyncio.to_thread(upload.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(upload.write, bytes(pending))
        return await asyncio.to_thread(finish, upload)
    except ClientDisconnect:
        raise InvalidRequest(f"the upload of {what} stopped before its end; PUT it again") from None
    finally:
        upload.abort()  # after `finish` there is nothing left to remove

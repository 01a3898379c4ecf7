"""A large upload arriving in the replica after its CALL, in BODY frames (gateway/streamed_upload.py): each file
spooled as it comes, in memory up to `SPOOL_MEMORY_BYTES` and in a temporary file past that, so an `fs.File`
parameter reads it from there and the replica never holds it whole. The call runs once the last frame arrived.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import IO, Any

from fnserve.runtime.protocol import ACK_BYTES, Kind
from fnserve.uploads import FILES_KEY, RAW_BODY_KEY, UPLOAD_KEY, File

SPOOL_MEMORY_BYTES = 1 << 20


class SpooledUpload:
    """One call's upload while it arrives; `add()` returns the call's context and query once it is whole."""

    def __init__(
        self,
        request_id: int,
        query: dict[str, Any],
        context: dict[str, Any],
        send_frame: Callable[..., None],
    ) -> None:
        self.request_id = request_id
        self.query = query
        self.context = {key: value for key, value in context.items() if key not in (UPLOAD_KEY, RAW_BODY_KEY)}
        self.send_frame = send_frame
        self.files: dict[str, list[Any]] = {}  # name → [content_type, filename, spool, size]
        self.current: list[Any] | None = None
        self.unacked = 0
        raw = context.get(RAW_BODY_KEY)
        if raw is not None:  # the body is the file for this parameter
            self._begin([raw["parameter"], raw["content_type"], None])

    def _begin(self, header: list[Any]) -> None:
        name, content_type, filename = header
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 - the File's
        self.current = self.files[name] = [content_type, filename, spool, 0]

    def add(
        self, data: bytes, more_body: bool, header: list[Any] | None = None, fields: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Take one BODY frame; (query, context) for the call once the last one came, else None."""
        if header is not None:
            self._begin(header)
        if data and self.current is not None:
            self.current[2].write(data)
            self.current[3] += len(data)
        self.unacked += len(data)
        if self.unacked >= ACK_BYTES or (not more_body and self.unacked):
            self.send_frame(Kind.BODY_ACK, self.request_id, self.unacked)
            self.unacked = 0
        if more_body:
            return None
        files = {}
        for name, (content_type, filename, spool, size) in self.files.items():
            spool.seek(0)
            files[name] = [content_type, filename, File(spool, size=size, content_type=content_type, filename=filename)]
        query = {**self.query, **fields} if fields else self.query
        return query, {**self.context, FILES_KEY: files}

    def discard(self) -> None:
        for _, _, spool, _ in self.files.values():
            spool.close()

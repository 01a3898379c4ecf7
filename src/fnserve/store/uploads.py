"""Bytes on their way into a store, whatever their size: written to a temporary file beside their destination, hashed
and counted as they come, refused as soon as they pass their limit, and moved into place only whole.

Uploaded assets and code artifacts both arrive this way; neither is ever held whole in memory. Writing is synchronous
file I/O, run in a thread by async callers (`fnserve.controlplane.uploads`), one call at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from fnserve.disk import discard, storage_error
from fnserve.errors import FnserveError


class StreamedUpload:
    """One upload's temporary file: `write` adds bytes (refusing those past `max_bytes` with `too_large()`, the file
    removed), `move_to` puts the whole file in place, `abort` removes it. Closing and aborting twice is harmless."""

    def __init__(self, directory: Path, *, prefix: str, max_bytes: int, too_large: Callable[[], FnserveError]) -> None:
        self.max_bytes = max_bytes
        self.too_large = too_large
        self.size = 0
        self.directory = directory
        self._hash = hashlib.sha256()
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)  # 0600
        except OSError as exc:
            raise storage_error(exc, directory) or exc from None
        self.temp_path = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        if self.size + len(data) > self.max_bytes:
            self.abort()
            raise self.too_large()
        try:
            self._file.write(data)
            self._file.flush()  # a full disk shows now, not at close
        except OSError as exc:
            self.abort()
            raise storage_error(exc, self.directory) or exc from None
        self._hash.update(data)
        self.size += len(data)

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            self.abort()
            raise storage_error(exc, self.directory) or exc from None

    def move_to(self, target: Path) -> None:
        """Put the whole file at `target` in one step (readers see all of it or nothing)."""
        self.close()
        try:
            os.replace(self.temp_path, target)
        except OSError as exc:
            raise storage_error(exc, self.directory) or exc from None

    def abort(self) -> None:
        """Drop what was written; harmless to call twice."""
        with contextlib.suppress(OSError):  # closing flushes, which fails again on a full disk
            self._file.close()
        discard(self.temp_path)

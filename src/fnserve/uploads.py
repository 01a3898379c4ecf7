"""`File`: what an endpoint parameter annotated `fs.File` receives, a request's raw body (or, with multipart, one
uploaded part): its bytes behind a file-like object, its content type, size and, for an uploaded part, its file name.

The gateway decides which bodies are raw (gateway/app.py); the replica builds the `File` (runtime/invoke.py).
"""

from __future__ import annotations

import io
import types
import typing
from typing import IO, Any

# Where a raw body's facts travel in a CALL's context: {"parameter": name, "content_type": str}.
RAW_BODY_KEY = "raw"
# Where a multipart body's file parts travel in a CALL's context: {parameter: [content_type, filename | None, bytes]}.
FILES_KEY = "files"
# In a CALL's context when the body is too large to travel in it: "raw" (the file itself, with RAW_BODY_KEY) or "form"
# (multipart). BODY frames bring it after the CALL, and the replica spools it (runtime/spool.py).
UPLOAD_KEY = "upload"


class File:
    """An uploaded file, as an endpoint parameter annotated `fs.File` receives it.

    Attributes:
        filename: the name the client gave the file (multipart), or None for a raw body.
        content_type: its media type as the client sent it, e.g. `"image/jpeg"`.
        size: its length in bytes.
        file: a binary file-like object positioned at the start.

    Example:
        >>> @svc.endpoint("/classify")
        ... def classify(image: fs.File, top_k: int = 5) -> list[str]:
        ...     return model.top(Image.open(image.file), top_k)

    `curl --data-binary @cat.jpg -H 'content-type: image/jpeg' URL/classify?top_k=3` sends the raw body; the other
    parameters then come from the query string.
    """

    __slots__ = ("content_type", "file", "filename", "size")

    def __init__(self, file: IO[bytes], *, size: int, content_type: str, filename: str | None = None) -> None:
        self.file = file
        self.size = size
        self.content_type = content_type
        self.filename = filename

    @classmethod
    def from_bytes(cls, data: bytes, *, content_type: str, filename: str | None = None) -> File:
        return cls(io.BytesIO(data), size=len(data), content_type=content_type, filename=filename)

    def read(self, size: int = -1) -> bytes:
        """Read (all of it by default) from the current position, as a file's `read`."""
        return self.file.read(size)

    def __repr__(self) -> str:
        return f"File(filename={self.filename!r}, content_type={self.content_type!r}, size={self.size})"


def is_file_annotation(annotation: Any) -> bool:
    """Whether a parameter takes a body as it is: `bytes`, `fs.File`, or either `| None`."""
    if annotation is bytes or annotation is File:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        return len(arguments) == 1 and (arguments[0] is bytes or arguments[0] is File)
    return False


def wants_file(annotation: Any) -> bool:
    """Whether a file parameter takes an `fs.File` (else `bytes`)."""
    if annotation is File:
        return True
    return File in typing.get_args(annotation)

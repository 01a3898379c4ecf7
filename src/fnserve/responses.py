"""What an endpoint returns when its answer is not JSON: `Response` (bytes or text with a media type, a status and
headers) and `FileResponse` (a file's bytes). A plain `bytes` return value is sent as `application/octet-stream`.

A returned PIL image is sent as PNG (JPEG or WebP when the caller's `Accept` asks), a numpy array as `.npy` when
the caller's `Accept` names `application/x-npy` (else as JSON, like any value). Such an answer crosses the replica
protocol in a MEDIA frame of its own, so the JSON path (a RESULT frame holding JSON bytes) does no extra work for it;
the Python client gives a non-JSON answer back as a `Response` too.
"""

from __future__ import annotations

import io
import mimetypes
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fnserve.uploads import NPY_MEDIA_TYPE, imported_attribute

OCTET_STREAM = "application/octet-stream"
_TEXT = "text/plain; charset=utf-8"
# Headers the gateway writes itself from the answer; a response that names them is refused when it is built.
_OWN_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "x-request-id", "connection"})


class Response:
    """An endpoint's answer as raw bytes: the body, its media type, the HTTP status and extra headers.

    Args:
        content: the body; text is sent as UTF-8.
        media_type: the `content-type` (default `application/octet-stream` for bytes, `text/plain; charset=utf-8`
            for text).
        status: the HTTP status, 200 to 599 (an error status sends the body as it is, not an error envelope).
        headers: extra response headers, e.g. `{"cache-control": "max-age=60"}`.

    Example:
        >>> @svc.endpoint("/plot", method="GET")
        ... def plot() -> fs.Response:
        ...     return fs.Response(png_bytes, media_type="image/png")

    The Python client returns the same type for any answer that is neither JSON nor `application/octet-stream`.
    """

    __slots__ = ("content", "headers", "media_type", "status")

    def __init__(
        self,
        content: bytes | bytearray | memoryview | str = b"",
        *,
        media_type: str | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(content, str):
            body = content.encode()
            default_type = _TEXT
        elif isinstance(content, bytes | bytearray | memoryview):
            body = bytes(content)
            default_type = OCTET_STREAM
        else:
            raise TypeError(
                f"Response content must be bytes or str, got {type(content).__name__}; return JSON-able values "
                "directly, without a Response"
            )
        if media_type is not None and (not isinstance(media_type, str) or "/" not in media_type):
            raise ValueError(f"media_type must be a MIME type like 'image/png', got {media_type!r}")
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"status must be an HTTP status from 200 to 599, got {status!r}")
        extra: dict[str, str] = {}
        for name, value in (headers or {}).items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"Response headers must map str to str, got {name!r}: {value!r}")
            if name.lower() in _OWN_HEADERS:
                raise ValueError(
                    f"Response header {name!r} is set by the server; "
                    + ("pass media_type= instead" if name.lower() == "content-type" else "leave it out")
                )
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"Response header {name!r} has a line break in its name or value")
            extra[name.lower()] = value
        self.content = body
        self.media_type = media_type or default_type
        self.status = status
        self.headers = extra

    def __repr__(self) -> str:
        return f"Response(<{len(self.content)} bytes>, media_type={self.media_type!r}, status={self.status})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (self.content, self.media_type, self.status, self.headers) == (
            other.content,
            other.media_type,
            other.status,
            other.headers,
        )

    __hash__ = None  # type: ignore[assignment]


class FileResponse(Response):
    """An endpoint's answer read from a file in the replica: its bytes, its media type (guessed from its name when not
    given) and, with `filename`, a `content-disposition: attachment` header so browsers save it under that name.

    Example:
        >>> @svc.endpoint("/report", method="GET")
        ... def report() -> fs.FileResponse:
        ...     return fs.FileResponse("out/report.pdf", filename="report.pdf")
    """

    __slots__ = ("path",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        media_type: str | None = None,
        filename: str | None = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            raise FileNotFoundError(f"FileResponse cannot read {str(path)!r}: {exc.strerror or exc}") from None
        if media_type is None:
            media_type = mimetypes.guess_type(filename or self.path.name)[0] or OCTET_STREAM
        extra = dict(headers or {})
        if filename is not None:
            extra.setdefault("content-disposition", _attachment(filename))
        super().__init__(content, media_type=media_type, status=status, headers=extra)


def _attachment(filename: str) -> str:
    """`attachment; filename="..."`, with RFC 5987's `filename*` for names that are not plain ASCII."""
    from urllib.parse import quote

    plain = filename.replace("\\", "\\\\").replace('"', '\\"')
    if plain.isascii() and plain.isprintable():
        return f'attachment; filename="{plain}"'
    return f"attachment; filename*=utf-8''{quote(filename)}"


def to_frame(value: Any, accept: str | None = None) -> tuple[bytes, str, int, list[list[str]]] | None:
    """A return value that is sent raw (bytes, `Response`, a PIL image, a numpy array the caller's `accept` asks as
    `.npy`) as the MEDIA frame's fields; None for anything else."""
    if isinstance(value, Response):
        return value.content, value.media_type, value.status, [[k, v] for k, v in value.headers.items()]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), OCTET_STREAM, 200, []
    image_class = imported_attribute("PIL.Image", "Image")
    if image_class is not None and isinstance(value, image_class):
        return encode_image(value, accept), _IMAGE_TYPES[_image_format(accept)], 200, []
    ndarray = imported_attribute("numpy", "ndarray")
    if ndarray is not None and isinstance(value, ndarray) and accept is not None and NPY_MEDIA_TYPE in accept:
        buffer = io.BytesIO()
        sys.modules["numpy"].save(buffer, value, allow_pickle=False)
        return buffer.getvalue(), NPY_MEDIA_TYPE, 200, []
    return None


# What a returned PIL image is sent as: PNG, unless the caller's Accept names JPEG or WebP first.
_IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_IMAGE_FORMATS = {media_type: name for name, media_type in _IMAGE_TYPES.items()}


def _image_format(accept: str | None) -> str:
    if accept is not None and "image/" in accept:
        for item in accept.split(","):
            name = _IMAGE_FORMATS.get(item.partition(";")[0].strip().lower())
            if name is not None:
                return name
    return "PNG"


def encode_image(image: Any, accept: str | None = None) -> bytes:
    """A PIL image's bytes, as PNG unless `accept` asks for JPEG or WebP first (JPEG has no alpha: RGB then)."""
    name = _image_format(accept)
    if name == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=name)
    return buffer.getvalue()


def from_frame(content: bytes, media_type: str, status: int, headers: list[list[str]]) -> Response:
    """The gateway's side of `to_frame`."""
    response = Response.__new__(Response)
    response.content = content
    response.media_type = media_type
    response.status = status
    response.headers = dict(headers)
    return response

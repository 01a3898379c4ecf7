"""`File`: what an endpoint parameter annotated `fs.File` receives, a request's raw body (or, with multipart, one
uploaded part): its bytes behind a file-like object, its content type, size and, for an uploaded part, its file name.
A parameter annotated `PIL.Image.Image` or `numpy.ndarray` takes an upload too, decoded from those bytes
(`decode_image`, `decode_array`).

The gateway decides which bodies are raw (gateway/app.py); the replica builds the `File` (runtime/invoke.py) and
decodes images and arrays while it validates the arguments (sdk/introspect.py). Neither PIL nor numpy is imported
here: an annotation can only name them once the service's module has imported them, so `sys.modules` has them.
"""

from __future__ import annotations

import importlib
import io
import sys
import types
import typing
from typing import IO, Any

import orjson

# Where a raw body's facts travel in a CALL's context: {"parameter": name, "content_type": str}.
RAW_BODY_KEY = "raw"
# Where the caller's Accept header travels in a CALL's context, when it may ask for something else than JSON (a numpy
# array as .npy, a PIL image as JPEG): gateway/app.py passes it on, responses.to_frame reads it.
ACCEPT_KEY = "accept"
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


def imported_attribute(module: str, name: str) -> Any:
    """`module.name` when the module is already imported, else None (never imports it)."""
    return getattr(sys.modules.get(module), name, None)


def _bare(annotation: Any) -> Any:
    """`X` for `X`, `X | None` and `Optional[X]`; None for any other union."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        return arguments[0] if len(arguments) == 1 else None
    return annotation


def decoded_kind(annotation: Any) -> str | None:
    """ "image" for `PIL.Image.Image`, "array" for `numpy.ndarray` (either `| None`), else None."""
    bare = _bare(annotation)
    if bare is None or bare is bytes or bare is File:
        return None
    if bare is imported_attribute("PIL.Image", "Image"):
        return "image"
    if bare is imported_attribute("numpy", "ndarray"):
        return "array"
    return None


def is_file_annotation(annotation: Any) -> bool:
    """Whether a parameter takes a body as it is: `bytes`, `fs.File`, a PIL image or a numpy array, or any of them
    `| None`."""
    bare = _bare(annotation)
    return bare is bytes or bare is File or (bare is not None and decoded_kind(bare) is not None)


def _upload_bytes(value: Any) -> bytes | None:
    if isinstance(value, File):
        value.file.seek(0)
        return value.file.read()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return None


def decode_image(value: Any) -> Any:
    """An uploaded file as a PIL image (`Image.open`, loaded now so a truncated file fails here); ValueError, which
    the arguments' validation turns into a 422 naming the parameter, when it is no image PIL reads."""
    image_class = imported_attribute("PIL.Image", "Image")
    if value is None or (image_class is not None and isinstance(value, image_class)):
        return value
    data = _upload_bytes(value)
    if data is None:
        raise ValueError(
            f"expected an image file, got {type(value).__name__}; upload it as a multipart part (curl -F "
            "image=@cat.png) or as the raw body with its content type (--data-binary @cat.png -H 'content-type: "
            "image/png')"
        )
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # PIL raises many kinds (UnidentifiedImageError, OSError, DecompressionBombError, ...)
        raise ValueError(f"not an image PIL can read ({len(data)} bytes: {exc})") from None
    return image


NPY_MEDIA_TYPE = "application/x-npy"
_NPY_MAGIC = b"\x93NUMPY"


def decode_array(value: Any) -> Any:
    """A numpy array from an `.npy` upload (`numpy.save`'s format; never pickles), or from JSON: a list in a JSON
    body, or a JSON text in a form field or the query string. ValueError when it is neither."""
    numpy = importlib.import_module("numpy")  # the service's own dependency: its parameter is an array
    if value is None or isinstance(value, numpy.ndarray):
        return value
    data = _upload_bytes(value)
    if data is not None and data.startswith(_NPY_MAGIC):
        try:
            return numpy.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"not a readable .npy array ({exc}); write it with numpy.save(file, array)") from None
    if data is not None or isinstance(value, str):
        try:
            value = orjson.loads(data if data is not None else value)
        except orjson.JSONDecodeError:
            raise ValueError(
                f"expected an array: an .npy file ({NPY_MEDIA_TYPE}, written by numpy.save) or a JSON list"
            ) from None
    if not isinstance(value, list | int | float | bool):
        raise ValueError(f"expected an array: a JSON list or an .npy file, got {type(value).__name__}")
    try:
        return numpy.asarray(value)
    except ValueError as exc:  # ragged lists
        raise ValueError(f"not an array ({exc}); send a list of equal-length lists") from None


def wants_file(annotation: Any) -> bool:
    """Whether a file parameter takes an `fs.File` (else `bytes`)."""
    if annotation is File:
        return True
    return File in typing.get_args(annotation)

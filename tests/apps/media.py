"""Answers that are not JSON: bytes, fs.Response, fs.FileResponse, and a stream with a media type of its own."""

from collections.abc import Iterator
from pathlib import Path

import fnserve as fs

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@fs.service(name="media", auth=False)
def media() -> dict[str, str]:
    return {}


@media.endpoint("/raw")
def raw(size: int = 4) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))


@media.endpoint("/image", method="GET")
def image() -> fs.Response:
    return fs.Response(PNG, media_type="image/png", headers={"cache-control": "max-age=60"})


@media.endpoint("/teapot")
async def teapot() -> fs.Response:
    return fs.Response("short and stout", status=418)


@media.endpoint("/file")
def file(path: str, filename: str | None = None) -> fs.FileResponse:
    return fs.FileResponse(path, filename=filename)


@media.endpoint("/bad-bytes")
def bad_bytes() -> dict[str, bytes]:
    return {"nested": b"not JSON"}


@media.endpoint("/speak", streaming=True, media_type="audio/wav")
def speak(count: int = 3) -> Iterator[bytes]:
    yield b"RIFF"
    for index in range(count):
        yield bytes([index]) * 4


@media.endpoint("/missing-file")
def missing_file(directory: str) -> fs.FileResponse:
    return fs.FileResponse(Path(directory) / "nothing-here.bin")

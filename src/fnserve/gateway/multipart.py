"""Reading a `multipart/form-data` body as it arrives: file parts for an endpoint's `bytes`/`fs.File` parameters,
other fields as text for its other parameters.

python-multipart (Starlette's parser) is fed each chunk as the client sends it, and the body limit is counted on
the same chunks, so an upload over the limit is refused (413) at its first byte past it, before the rest arrives.
"""

from __future__ import annotations

from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from fnserve.errors import InvalidRequest
from fnserve.gateway.http import Receive, body_chunks

MAX_PARTS = 1000


class _Form:
    """The parser's callbacks: the parts seen so far, and the one being read."""

    def __init__(self, files: frozenset[str]) -> None:
        self.file_names = files
        self.fields: dict[str, str] = {}
        self.files: dict[str, list[Any]] = {}
        self.parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidRequest(f"multipart body has more than {MAX_PARTS} parts")
        self._headers = {}
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        with memoryview(data) as view:  # no copy of the piece before it is added
            self._data += view[start:end]

    def on_part_end(self) -> None:
        name, file = self._part()
        if file is not None:
            self.files[name] = [*file, self._data]  # sent on as it is (msgpack takes a bytearray): no copy
        else:
            self.fields[name] = self._data.decode("utf-8", "replace")

    def _part(self) -> tuple[str, list[str | None] | None]:
        """The current part's name, and [content_type, filename] when it is a file (it has a file name, or it is for
        a file parameter)."""
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InvalidRequest("a multipart part has no name in its content-disposition header; name each field")
        name = raw_name.decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None and name not in self.file_names:
            return name, None
        content_type = self._headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
        return name, [content_type, None if filename is None else filename.decode("utf-8", "replace")]


class StreamedForm(_Form):
    """A form read for a large upload: its file parts' bytes are not kept but noted in `events` as they are parsed,
    for the gateway to send on (gateway/streamed_upload.py); its fields are kept, as `_Form` keeps them."""

    def __init__(self, files: frozenset[str]) -> None:
        super().__init__(files)
        # (bytes of the current file part, or b"" with [name, content_type, filename] where a file part begins)
        self.events: list[tuple[bytes, list[str | None] | None]] = []
        self._streaming = False

    def on_headers_finished(self) -> None:
        name, file = self._part()
        self._streaming = file is not None
        if file is not None:
            self.events.append((b"", [name, *file]))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._streaming:
            self.events.append((data[start:end], None))
        else:
            super().on_part_data(data, start, end)

    def on_part_end(self) -> None:
        if not self._streaming:
            super().on_part_end()


def form_parser(content_type: bytes, form: _Form) -> MultipartParser:
    """A parser for a multipart body of this content type, feeding `form`; InvalidRequest without a boundary."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidRequest("multipart/form-data body has no boundary in its content-type; let the client set it")
    callbacks: Any = {
        "on_part_begin": form.on_part_begin,
        "on_part_data": form.on_part_data,
        "on_part_end": form.on_part_end,
        "on_header_field": form.on_header_field,
        "on_header_value": form.on_header_value,
        "on_header_end": form.on_header_end,
    }
    if isinstance(form, StreamedForm):
        callbacks["on_headers_finished"] = form.on_headers_finished
    return MultipartParser(boundary, callbacks)


def feed(parser: MultipartParser, chunk: bytes | None) -> None:
    """Parse one chunk of the body (None: its end); InvalidRequest when it is malformed."""
    try:
        if chunk is None:
            parser.finalize()
        else:
            parser.write(chunk)
    except MultipartParseError as exc:
        raise InvalidRequest(f"multipart/form-data body is malformed ({exc})") from None


async def read_form(
    receive: Receive, content_type: bytes, limit: int, files: list[str]
) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """The fields (name → text) and file parts (name → [content_type, filename, bytes]) of a multipart body.

    InvalidRequest when it is malformed, PayloadTooLarge once it passes `limit` bytes, ClientDisconnected when the
    client leaves before its end."""
    form = _Form(frozenset(files))
    parser = form_parser(content_type, form)
    async for chunk in body_chunks(receive, limit):
        feed(parser, chunk)
    feed(parser, None)
    return form.fields, form.files

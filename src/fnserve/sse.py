"""Server-Sent Events as fnserve writes them (the gateway) and reads them (the client): one event per chunk.

A chunk becomes one `data:` line per line of it, as the SSE spec asks, so any SSE consumer receives it whole: an
empty chunk is `data: ` alone, a chunk `"\\n"` is two empty `data:` lines. SSE has no way to carry a carriage
return (CR, LF and CRLF all end a line, and the lines are joined with LF), so a chunk that holds one also gets a
`fnserve-chunk:` line with the chunk as a JSON string: consumers that follow the spec ignore a field they do not
know, and our client reads it to hand back the chunk byte for byte. SSE is UTF-8 text: bytes that are not reach
SSE consumers as U+FFFD; the plain stream (without `Accept: text/event-stream`) carries any bytes.

Most chunks are a token or a line: the encoder is one `replace` on bytes and no decoding.
"""

from __future__ import annotations

import codecs
import re

import orjson

# Our own field: the exact chunk, as a JSON string, for chunks with a CR (SSE turns it into LF).
EXACT_FIELD = "fnserve-chunk"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def encode_event(chunk: bytes) -> bytes:
    """One chunk as one SSE event (`data:` lines and a blank line)."""
    if b"\r" not in chunk:
        return b"data: %s\n\n" % chunk.replace(b"\n", b"\ndata: ")
    text = chunk.decode(errors="replace")
    data = "data: " + _LINE_BREAK.sub("\ndata: ", text) + f"\n{EXACT_FIELD}: "
    return data.encode() + orjson.dumps(text) + b"\n\n"


def encode_error(error_json: bytes) -> bytes:
    """The final `event: error` of a stream that failed after its first chunk (error JSON holds no line break)."""
    return b"event: error\ndata: " + error_json + b"\n\n"


class EventReader:
    """Reads a text/event-stream as it arrives and gives each event's (type, data).

    Lines end at CR, LF or CRLF only: not at the other characters `str.splitlines` (and so httpx's `iter_lines`)
    also breaks at, like U+2028 or U+0085, which a chunk may hold. Fields are parsed as the spec says: `data` lines
    are joined with LF, one space after the colon is dropped, comments and unknown fields are ignored, and an event
    with no `data` line is not dispatched, nor one the stream ends in the middle of. Our `fnserve-chunk` field,
    when present, replaces the joined data.
    """

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []
        self.exact: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # the start of a line whose end has not arrived

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        """Feed bytes as they arrive; the events they complete."""
        text = self._partial + self._decoder.decode(data)
        held = ""
        if text.endswith("\r"):  # maybe the first half of a CRLF: decide with the next bytes
            text, held = text[:-1], "\r"
        lines = _LINE_BREAK.split(text)
        self._partial = lines.pop() + held
        events = []
        for line in lines:
            event = self.line(line)
            if event is not None:
                events.append(event)
        return events

    def line(self, line: str) -> tuple[str, str] | None:
        """Feed one whole line, without its ending; at the blank line that ends an event with data, the event."""
        if line:
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                self.data.append(value)
            elif name == "event":
                self.event = value or "message"
            elif name == EXACT_FIELD:
                self.exact = orjson.loads(value)
            return None
        if not self.data:
            self.event, self.exact = "message", None
            return None
        data = "\n".join(self.data) if self.exact is None else self.exact
        dispatched = (self.event, data)
        self.event, self.data, self.exact = "message", [], None
        return dispatched

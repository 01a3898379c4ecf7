"""The service the gateway benchmarks load: a no-op, a JSON echo and a stream, each as cheap as an endpoint can be.

`/noop` measures the platform's own overhead, `/echo` adds a 1 KiB body validated against typed parameters,
`/stream` yields small chunks, as a token stream would, `/upload` takes a 1 MiB file (multipart) and `/download`
answers 1 MiB of bytes. The peers' apps in `benchmarks/peers/` and the bare
app serve the same paths with the same answers.
"""

from collections.abc import Iterator

import fnserve as fs


@fs.service(name="noop")  # auth on, like a real service: requests carry the owner key
def noop() -> dict[str, object]:
    """A service that does nothing, to measure the platform's own overhead."""
    return {}


@noop.endpoint("/noop")
def call() -> str:
    return "ok"


@noop.endpoint("/echo")
def echo(name: str, tags: list[str], values: list[int], meta: dict[str, str]) -> dict[str, object]:
    """Return the validated arguments as they came."""
    return {"name": name, "tags": tags, "values": values, "meta": meta}


# The bytes `/download` answers: benchmarks/scenarios.py's PAYLOAD (this file is deployed alone, so it is built here).
PAYLOAD = bytes(range(256)) * 4096


@noop.endpoint("/upload")
def upload(image: fs.File) -> dict[str, int]:
    """Read the whole uploaded file and answer its size."""
    return {"bytes": len(image.read())}


@noop.endpoint("/download")
def download(size: int) -> bytes:
    """`size` bytes (up to 1 MiB), as application/octet-stream."""
    return PAYLOAD[:size]


@noop.endpoint("/stream", streaming=True)
def stream(chunks: int = 100) -> Iterator[str]:
    """Yield `chunks` short lines, one chunk each."""
    for i in range(chunks):
        yield f"token {i:04d}\n"

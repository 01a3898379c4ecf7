"""Scenarios: the request a benchmark sends, what a correct answer looks like, and the service that serves it.

A scenario is data only. Targets decide how to serve it (the bare app and the peers' apps have a route per
scenario, fnserve deploys `service_entrypoint`), and `wrk.py` turns it into a Lua script. Every target serves
the same path with the same body; where a framework's natural answer differs in form (BentoML answers a `str`
as text/plain), the scenario names the answer it accepts from that target in `expected_by_target`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One kind of request, loaded at several concurrencies against every target.

    Attributes:
        name: Short label used in tables and `--scenarios`.
        description: One line for RESULTS.md.
        method: HTTP method wrk sends.
        path: Request path, the same on every target (`/noop/noop`).
        body: Request body, sent as is.
        headers: Extra request headers.
        expected_body: The exact response body a correct server returns; checked once before loading.
        service_entrypoint: `file.py:object` that platform targets deploy to serve this scenario.
        service_name: The service name that entrypoint declares (its control-plane name).
        compare_json: Compare answers parsed as JSON rather than byte for byte (serializers differ in spacing).
        expected_by_target: The answer accepted from a named target instead of `expected_body`.
        concurrencies: The concurrencies this scenario is loaded at, of the run's; None for all of them.
        chunks: For a streaming scenario, the chunks in each answer (chunks/s = answers/s × chunks); else 0.
        large_bodies: Its request or answer is large (a 1 MiB file): its answer is checked after idle memory is read,
            since the buffers it leaves would count as the idle server's.
    """

    name: str
    description: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    expected_body: bytes
    service_entrypoint: str
    service_name: str
    compare_json: bool = False
    expected_by_target: dict[str, bytes] = field(default_factory=dict)
    concurrencies: tuple[int, ...] | None = None
    chunks: int = 0
    large_bodies: bool = False

    def expects(self, target: str, body: bytes) -> bool:
        """Whether `body` is a correct answer from `target` (surrounding whitespace ignored)."""
        expected = self.expected_by_target.get(target, self.expected_body)
        if not self.compare_json:
            return body.strip() == expected.strip()
        try:
            return bool(orjson.loads(body) == orjson.loads(expected))
        except orjson.JSONDecodeError:
            return False

    def loaded_at(self, concurrencies: list[int]) -> list[int]:
        """The run's concurrencies this scenario is loaded at."""
        return [c for c in concurrencies if self.concurrencies is None or c in self.concurrencies]


# The fnserve targets' owner key, sent with every request (the bare app ignores it): auth is on while measured.
BENCHMARK_OWNER_KEY = "fsk_benchmark-" + "0" * 30
AUTHORIZATION = {"Authorization": f"Bearer {BENCHMARK_OWNER_KEY}"}

JSON_HEADERS = {"Content-Type": "application/json", **AUTHORIZATION}
APP = "benchmarks/apps/noop.py:noop"  # serves every scenario: fnserve deploys it once per server

NOOP = Scenario(
    name="noop",
    description='POST `{}` to a no-op endpoint that returns `"ok"`: the platform\'s own overhead.',
    method="POST",
    path="/noop/noop",
    body=b"{}",
    headers=JSON_HEADERS,
    expected_body=b'"ok"',
    service_entrypoint=APP,
    service_name="noop",
    expected_by_target={"bentoml": b"ok"},  # BentoML answers a `str` as text/plain
)

# About 1 KiB of JSON whose fields match the echo endpoints' typed parameters, so every target validates it.
ECHO_INPUT = {
    "name": "fnserve benchmark echo",
    "tags": [f"tag-{i:02d}" for i in range(24)],
    "values": list(range(100_000, 100_000 + 48 * 997, 997)),
    "meta": {f"key-{i:02d}": f"value-{i:02d}" for i in range(20)},
}
ECHO_BODY = orjson.dumps(ECHO_INPUT)

ECHO = Scenario(
    name="echo",
    description=(
        f"POST a {len(ECHO_BODY):,}-byte JSON object (`name: str`, `tags: list[str]`, `values: list[int]`, "
        "`meta: dict[str, str]`) to an endpoint with those typed parameters, which returns them: validation "
        "and serialization of a small real body. The bare app parses and re-serializes it without validating."
    ),
    method="POST",
    path="/noop/echo",
    body=ECHO_BODY,
    headers=JSON_HEADERS,
    expected_body=ECHO_BODY,
    service_entrypoint=APP,
    service_name="noop",
    compare_json=True,
)

STREAM_CHUNKS = 100

STREAM = Scenario(
    name="stream",
    description=(
        f'POST `{{"chunks": {STREAM_CHUNKS}}}` to a generator endpoint that yields {STREAM_CHUNKS} 11-byte lines '
        "(`token 0000\\n` ...), one chunk each, as a token stream would. wrk times whole streams (p50/p99 are "
        "the full stream; chunks/s = streams/s × chunks); the time to the first chunk is probed apart, at "
        "concurrency 1."
    ),
    method="POST",
    path="/noop/stream",
    body=orjson.dumps({"chunks": STREAM_CHUNKS}),
    headers=JSON_HEADERS,
    expected_body="".join(f"token {i:04d}\n" for i in range(STREAM_CHUNKS)).encode(),
    service_entrypoint=APP,
    service_name="noop",
    concurrencies=(1, 16),
    chunks=STREAM_CHUNKS,
)

# 1 MiB of every byte value in turn: an image's worth of binary data that no target can compress or take as text.
# The apps (benchmarks/apps/noop.py, bare_app.py, peers/) build the same bytes the same way.
PAYLOAD = bytes(range(256)) * 4096
UPLOAD_BOUNDARY = "fnserve-benchmark-boundary"
UPLOAD_BODY = (
    (
        f"--{UPLOAD_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="image"; filename="image.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    + PAYLOAD
    + f"\r\n--{UPLOAD_BOUNDARY}--\r\n".encode()
)

UPLOAD = Scenario(
    name="upload",
    description=(
        f"POST a {len(PAYLOAD) // 2**20} MiB file as `multipart/form-data` (`-F image=@image.png`) to an endpoint "
        "that reads the whole upload and answers its size: a file upload, parsed and handed to the model's code."
    ),
    method="POST",
    path="/noop/upload",
    body=UPLOAD_BODY,
    headers={"Content-Type": f"multipart/form-data; boundary={UPLOAD_BOUNDARY}", **AUTHORIZATION},
    expected_body=orjson.dumps({"bytes": len(PAYLOAD)}),
    service_entrypoint=APP,
    service_name="noop",
    compare_json=True,
    concurrencies=(1, 16),
    large_bodies=True,
)

DOWNLOAD = Scenario(
    name="download",
    description=(
        f'POST `{{"size": {len(PAYLOAD)}}}` to an endpoint that returns that many bytes as '
        "`application/octet-stream`: a binary answer (an image, audio), sent as it is."
    ),
    method="POST",
    path="/noop/download",
    body=orjson.dumps({"size": len(PAYLOAD)}),
    headers=JSON_HEADERS,
    expected_body=PAYLOAD,
    service_entrypoint=APP,
    service_name="noop",
    concurrencies=(1, 16),
    large_bodies=True,
)

SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in (NOOP, ECHO, STREAM, UPLOAD, DOWNLOAD)}

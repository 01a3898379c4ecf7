"""`Client` and `AsyncClient`: the server's HTTP API as Python methods, sync and async, over httpx.

Both build requests with the same helpers and turn the error envelope back into the matching
`FnserveError`, so `except fs.errors.ServiceNotFound` works on the client too. Jobs and assets
(docs/JOBS.md) are methods here too; `fnserve.client.jobs` wraps a job id in a handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import mimetypes
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload
from urllib.parse import quote

import httpx
import orjson

from fnserve.auth import is_whole_token
from fnserve.errors import InternalError, InvalidRequest, error_from_code
from fnserve.responses import OCTET_STREAM, Response, encode_image
from fnserve.settings import ClientSettings
from fnserve.sse import EventReader
from fnserve.uploads import NPY_MEDIA_TYPE, imported_attribute

CONTROL_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# An invocation may run as long as the server lets it (300 s by default); streams may pause between chunks.
INVOKE_TIMEOUT = httpx.Timeout(330.0, connect=5.0)
# Uploads and downloads of assets: a deadline per read or write of a chunk, not for the whole transfer.
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=5.0)
INPUT_ASSETS_HEADER = "fnserve-input-assets"
MAX_STATUS_WAIT_S = 60.0  # the longest `wait_s` the server takes on `/status/{id}`
MAX_RUNSYNC_WAIT_S = 300.0
UPLOAD_CHUNK_BYTES = 1024 * 1024

ProgressCallback = Callable[[int], None]  # called with the number of bytes just sent


def raise_for_error(response: httpx.Response) -> None:
    """Raise the `FnserveError` a failed response carries (or InternalError when it carries none)."""
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        raise error_from_code(error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        raise InternalError(
            f"{response.request.method} {response.request.url} answered {response.status_code}: {response.text[:300]}"
        ) from None


def _headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def _segment(value: str) -> str:
    """A name or id as one URL path segment, quoted, so that no value makes an invalid URL. A '/' would reach
    another route (servers decode %2F before routing), so it is refused here, as anything but a string is."""
    if not isinstance(value, str):
        raise TypeError(f"expected a name or id (a str), got {type(value).__name__} {value!r:.80}")
    if "/" in value:
        raise InvalidRequest(f"{value!r:.80} is not a name or id: those hold no '/'")
    return quote(value, safe="")


def invoke_path(route_prefix: str, path: str) -> str:
    return (route_prefix.rstrip("/") + path) if route_prefix != "/" else path


def jobs_prefix(service: dict[str, Any]) -> str:
    """Where a service's job paths are (`/run`, `/status/{id}`...), from its info: under its route prefix, or under
    `{prefix}/-` for a command service, whose other paths are its server's (docs/COMMANDS.md)."""
    prefix: str = service["route_prefix"]
    if (service.get("api") or {}).get("http_app") == "command":
        return invoke_path(prefix, "/-")
    return prefix


def _is_upload(value: Any) -> bool:
    return (
        isinstance(value, bytes | bytearray)
        or (hasattr(value, "read") and not isinstance(value, str))
        or _encoded_upload(value, "") is not None
    )


def _encoded_upload(value: Any, name: str) -> tuple[str, bytes, str] | None:
    """A PIL image (as PNG) or a numpy array (as .npy) as a file part, when those packages are loaded; else None."""
    image_class = imported_attribute("PIL.Image", "Image")
    if image_class is not None and isinstance(value, image_class):
        return f"{name}.png", encode_image(value), "image/png"
    ndarray = imported_attribute("numpy", "ndarray")
    if ndarray is not None and isinstance(value, ndarray):
        buffer = io.BytesIO()
        sys.modules["numpy"].save(buffer, value, allow_pickle=False)
        return f"{name}.npy", buffer.getvalue(), NPY_MEDIA_TYPE
    return None


def form_request(arguments: dict[str, Any]) -> dict[str, Any] | None:
    """httpx keyword arguments for a multipart/form-data call when some argument is a file (an open file, bytes, a PIL
    image, a numpy array), else None: files as parts (named as the file is), the other arguments as text fields (JSON
    for non-strings)."""
    if not any(_is_upload(value) for value in arguments.values()):
        return None
    files: dict[str, Any] = {}
    data: dict[str, str] = {}
    for name, value in arguments.items():
        encoded = _encoded_upload(value, name)
        if encoded is not None:
            files[name] = encoded
        elif _is_upload(value):
            filename = Path(str(getattr(value, "name", name))).name
            content = bytes(value) if isinstance(value, bytes | bytearray) else value
            files[name] = (filename, content, mimetypes.guess_type(filename)[0] or OCTET_STREAM)
        else:
            data[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return {"files": files, "data": data}


def invoke_request(
    method: str, arguments: dict[str, Any], assets: Sequence[str] | None = None, accept: str | None = None
) -> dict[str, Any]:
    """httpx keyword arguments for an invocation: JSON body, or query parameters for GET and DELETE; the assets
    it names go in the `fnserve-input-assets` header, and `accept` (e.g. `application/x-npy`) in Accept."""
    request: dict[str, Any]
    if method in ("GET", "DELETE"):
        params = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in arguments.items()}
        request = {"params": params, "headers": {}}
    else:
        form = form_request(arguments)
        if form is None:
            request = {"content": orjson.dumps(arguments), "headers": {"content-type": "application/json"}}
        else:  # httpx sets the multipart content type, with its boundary
            request = {**form, "headers": {}}
    request["headers"].update(assets_header(assets))
    if accept is not None:
        request["headers"]["accept"] = accept
    return request


def assets_header(assets: Sequence[str] | None) -> dict[str, str]:
    if isinstance(assets, str):  # a lone id would otherwise be sent one character at a time
        raise TypeError(f"assets must be a list of asset ids, got the string {assets!r}; use [{assets!r}]")
    return {INPUT_ASSETS_HEADER: ",".join(assets)} if assets else {}


def job_request(
    path: str,
    method: str,
    arguments: dict[str, Any] | None,
    assets: Sequence[str] | None,
    policy: dict[str, Any] | None,
) -> dict[str, Any]:
    """httpx keyword arguments for `/run` and `/runsync`: the job body, and the assets header."""
    body: dict[str, Any] = {"endpoint": path, "method": method.upper(), "input": arguments or {}}
    if policy is not None:
        body["policy"] = policy
    return {
        "content": orjson.dumps(body),
        "headers": {"content-type": "application/json", **assets_header(assets)},
    }


def decode_result(response: httpx.Response, *, downloaded: bool = False) -> Any:
    """A call's result: JSON decoded; `application/octet-stream` (an endpoint that returned bytes) as bytes; any other
    media type as an `fs.Response` (content, media_type, status, headers). A result over the inline limit comes the
    same way from its download URL (after a 302, or a job's `output_url`)."""
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        return response.json()
    if not content_type and not downloaded and not response.history:
        return response.json()
    if content_type.partition(";")[0].strip().lower() in ("", OCTET_STREAM):
        return response.content
    headers = {name: value for name, value in response.headers.items() if name not in _TRANSPORT_HEADERS}
    return Response(response.content, media_type=content_type, status=response.status_code, headers=headers)


# Headers of the HTTP exchange rather than of the answer, left out of a returned `fs.Response`.
_TRANSPORT_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "connection", "date", "server", "x-request-id"}
)


def _wait_timeout(wait_s: float) -> httpx.Timeout:
    return httpx.Timeout(wait_s + 30.0, connect=5.0)


def _asset_request(source: str | Path | bytes, content_type: str | None, description: str) -> dict[str, Any]:
    """The body of `POST /v1/assets`; a file's content type is guessed from its name when not given."""
    if content_type is None:
        guessed = None if isinstance(source, bytes) else mimetypes.guess_type(Path(source).name)[0]
        content_type = guessed or "application/octet-stream"
    return {"content_type": content_type, "description": description}


def _upload_size(source: str | Path | bytes) -> int:
    if isinstance(source, bytes):
        return len(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no file to upload at {path}")
    return path.stat().st_size


def _file_chunks(path: Path, on_progress: ProgressCallback | None) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK_BYTES):
            yield chunk
            if on_progress is not None:
                on_progress(len(chunk))


async def _afile_chunks(path: Path, on_progress: ProgressCallback | None) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, UPLOAD_CHUNK_BYTES):
            yield chunk
            if on_progress is not None:
                on_progress(len(chunk))
    finally:
        handle.close()


def _sha256_of(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with data.open("rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _output_path(dest: str | Path, asset_id: str) -> Path:
    path = Path(dest)
    return path / asset_id if path.is_dir() else path


def parse_sse(data: Iterable[bytes]) -> Iterator[str]:
    """Chunks from the bytes of a text/event-stream as they arrive, each exactly as the endpoint yielded it
    (`fnserve.sse`); an `event: error` raises the error it carries."""
    reader = EventReader()
    for piece in data:
        for event in reader.feed(piece):
            yield _chunk(event)


def _json_lines(pieces: Iterable[bytes]) -> Iterator[Any]:
    """The values of an NDJSON body as it arrives. Lines end at LF only: httpx's `iter_lines` also ends them at
    U+2028, U+0085 and the like, which a JSON string may hold as they are (a build log line, an error message)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if b"\n" in piece:
            *lines, rest = buffer.split(b"\n")
            buffer = bytearray(rest)
            yield from (orjson.loads(line) for line in lines if line.strip())
    if buffer.strip():
        yield orjson.loads(buffer)


def _chunk(event: tuple[str, str]) -> str:
    kind, data = event
    if kind == "error":
        error = orjson.loads(data)["error"]
        raise error_from_code(error["code"], error["message"], error.get("details"))
    return data


class Client:
    """A synchronous client for one fnserve server.

    Example:
        >>> with Client() as client:
        ...     [service["name"] for service in client.list_services()]
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None) -> None:
        settings = ClientSettings.from_env(url, api_key)
        self.url = settings.url
        self.api_key = settings.api_key
        self._http = httpx.Client(base_url=self.url, headers=_headers(settings.api_key), timeout=CONTROL_TIMEOUT)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        raise_for_error(response)
        return response.json()

    def upload(self, data: bytes | Path, *, sha256: str | None = None) -> str:
        """Store bytes, or a file streamed from disk, on the server by their sha256 (skipped when already there);
        returns the digest. `sha256`: the file's digest, when the caller has it already."""
        digest = sha256 or _sha256_of(data)
        if self._http.head(f"/v1/artifacts/{digest}").status_code != 200:
            if isinstance(data, bytes):
                self._json("PUT", f"/v1/artifacts/{digest}", content=data)
            else:
                headers = {"content-length": str(data.stat().st_size)}
                self._json(
                    "PUT",
                    f"/v1/artifacts/{digest}",
                    content=_file_chunks(data, None),
                    headers=headers,
                    timeout=TRANSFER_TIMEOUT,
                )
        return digest

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/v1/services", json=body)
        return result

    def get_service(self, name_or_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/services/{_segment(name_or_id)}")
        return result

    def list_services(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/v1/services")
        return result

    def teardown(self, name_or_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("DELETE", f"/v1/services/{_segment(name_or_id)}")
        return result

    def disable(self, name_or_id: str) -> dict[str, Any]:
        """Stop a service's replicas and refuse its calls (503 `service_disabled`) until `enable`; it keeps its
        versions, tokens and queued jobs. Returns once its replicas have stopped, its info in state DISABLED.

        Example:
            >>> client.disable("greeter")["state"]
            'DISABLED'
        """
        result: dict[str, Any] = self._json("POST", f"/v1/services/{_segment(name_or_id)}/disable")
        return result

    def enable(self, name_or_id: str) -> dict[str, Any]:
        """Start a disabled service again as it was (same versions, replicas, autoscaling). Returns at once, its info
        in state DEPLOYING; `fs.get_deployment(name, wait=True)` waits for ACTIVE."""
        result: dict[str, Any] = self._json("POST", f"/v1/services/{_segment(name_or_id)}/enable")
        return result

    def rollback(self, name_or_id: str, to: int | None = None) -> dict[str, Any]:
        """Serve an earlier version again (default: the previous one), blue/green."""
        result: dict[str, Any] = self._json("POST", f"/v1/services/{_segment(name_or_id)}/rollback", json={"to": to})
        return result

    def put_environment(self, name: str, requirements: list[str], python: str | None = None) -> dict[str, Any]:
        """Create or update the named environment `name` (services name it with `env=`)."""
        body = {"requirements": requirements, "python": python}
        result: dict[str, Any] = self._json("PUT", f"/v1/environments/{_segment(name)}", json=body)
        return result

    def list_environments(self) -> dict[str, Any]:
        """`{"environments": [named ones], "builds": [built venvs with size, packages and the versions using them]}`."""
        result: dict[str, Any] = self._json("GET", "/v1/environments")
        return result

    def delete_environment(self, name_or_key: str) -> dict[str, Any]:
        """Remove a named environment, or a built one by its key (refused while a running version uses it)."""
        result: dict[str, Any] = self._json("DELETE", f"/v1/environments/{_segment(name_or_key)}")
        return result

    def prune_environments(self) -> dict[str, Any]:
        """Remove every built environment no running version uses, and builds left half-done."""
        result: dict[str, Any] = self._json("POST", "/v1/environments/prune")
        return result

    def describe(
        self,
        code_sha256: str,
        entrypoint: str,
        *,
        requirements: list[str] | None = None,
        env: str | None = None,
        python: str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The spec of an uploaded project's service, read on the server inside its environment (built first, its
        progress and log lines passed to `on_event`). Raises the server's error: EnvBuildFailed, or SpecError with
        the import's traceback."""
        body = {
            "code_sha256": code_sha256,
            "entrypoint": entrypoint,
            "requirements": requirements,
            "env": env,
            "python": python,
        }
        with self._http.stream("POST", "/v1/describe", json=body, timeout=httpx.Timeout(30.0, read=None)) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            for event in _json_lines(response.iter_bytes()):
                if event["event"] == "spec":
                    spec: dict[str, Any] = event["spec"]
                    return spec
                if event["event"] == "error":
                    raise error_from_code(event["error"]["code"], event["error"]["message"])
                if on_event is not None:
                    on_event(event)
        raise InternalError("the server ended its description without a spec or an error; see its log")

    def build_log(self, name_or_id: str, version: int | None = None) -> str:
        """The environment build log of a service's version (default: its newest)."""
        params = {} if version is None else {"version": version}
        response = self._http.get(f"/v1/services/{_segment(name_or_id)}/build-log", params=params)
        raise_for_error(response)
        return response.text

    def service_info(self, route_prefix: str, *, app: bool = False) -> dict[str, Any]:
        """A service's `/info` (owner only); an app service's is `/-/info`, its `/info` being the app's."""
        result: dict[str, Any] = self._json("GET", invoke_path(route_prefix, "/-/info" if app else "/info"))
        return result

    def create_token(self, name_or_id: str, label: str = "") -> dict[str, Any]:
        """A new invocation token for one service; its secret (`token`) is in this answer only."""
        result: dict[str, Any] = self._json(
            "POST", f"/v1/functions/{_segment(name_or_id)}/tokens", json={"label": label}
        )
        return result

    def list_tokens(self, name_or_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"/v1/functions/{_segment(name_or_id)}/tokens")
        return result

    def revoke_token(self, name_or_id: str, token_ref: str) -> dict[str, Any]:
        """Revoke a token by id or hint, or by the whole token (`fst_...`, sent in the body, never in a URL); it stops
        working at once."""
        tokens = f"/v1/functions/{_segment(name_or_id)}/tokens"
        if is_whole_token(token_ref):
            result: dict[str, Any] = self._json("POST", f"{tokens}/revoke", json={"token": token_ref})
        else:
            result = self._json("DELETE", f"{tokens}/{_segment(token_ref)}")
        return result

    def health(self) -> bool:
        try:
            return self._http.get("/-/healthz", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def invoke(
        self,
        route_prefix: str,
        path: str,
        method: str = "POST",
        arguments: dict[str, Any] | None = None,
        *,
        assets: Sequence[str] | None = None,
        accept: str | None = None,
    ) -> Any:
        """Call an endpoint and return its decoded JSON result.

        Args:
            route_prefix: the service's prefix, e.g. `/greeter`.
            path: the endpoint path with its parameters filled, e.g. `/users/7`.
            method: the HTTP method.
            arguments: the JSON body (query parameters for GET and DELETE).
            assets: ids of uploaded assets the endpoint reads (its `_assets` parameter).
            accept: the Accept header, for an answer other than JSON: `application/x-npy` for a numpy array,
                `image/jpeg` for a PIL image (the answer is then an `fs.Response`).

        A result over the server's inline limit answers 302 to its download URL, which is followed.
        """
        response = self._http.request(
            method,
            invoke_path(route_prefix, path),
            timeout=INVOKE_TIMEOUT,
            follow_redirects=True,
            **invoke_request(method, arguments or {}, assets, accept),
        )
        raise_for_error(response)
        return decode_result(response)

    def stream(
        self, route_prefix: str, path: str, method: str = "POST", arguments: dict[str, Any] | None = None
    ) -> Iterator[str | bytes]:
        """Call a streaming endpoint; yields each chunk as text as soon as the server sends it (bytes as they arrive,
        for an endpoint declared with a `media_type`)."""
        request = invoke_request(method, arguments or {})
        request["headers"]["accept"] = "text/event-stream"
        with self._http.stream(method, invoke_path(route_prefix, path), timeout=INVOKE_TIMEOUT, **request) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                yield from response.iter_bytes()  # a stream with a media type of its own (audio/wav): its raw bytes
                return
            yield from parse_sse(response.iter_bytes())

    # -- jobs (docs/JOBS.md) -------------------------------------------------------------------------------------

    def submit(
        self,
        route_prefix: str,
        path: str,
        method: str = "POST",
        arguments: dict[str, Any] | None = None,
        *,
        assets: Sequence[str] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a call as a job; returns `{"id": "job-…", "status": "IN_QUEUE"}` at once.

        Args:
            route_prefix: the service's prefix, e.g. `/greeter`.
            path: the endpoint path with its parameters filled, e.g. `/users/7`.
            method: the endpoint's HTTP method.
            arguments: the endpoint's arguments, validated now (a bad one raises ValidationFailed here).
            assets: ids of uploaded assets the endpoint reads.
            policy: overrides of the service's job limits, e.g. `{"timeout_s": 600, "ttl_s": 3600}`.

        Raises:
            QueueFull: the service already holds `max_queued` jobs.
        """
        result: dict[str, Any] = self._json(
            "POST", invoke_path(route_prefix, "/run"), **job_request(path, method, arguments, assets, policy)
        )
        return result

    def run_sync(
        self,
        route_prefix: str,
        path: str,
        method: str = "POST",
        arguments: dict[str, Any] | None = None,
        wait_s: float = 90.0,
        *,
        assets: Sequence[str] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a call as a job and wait up to `wait_s` (at most 300) for it: the finished job, or
        `{"id", "status"}` of one still running."""
        result: dict[str, Any] = self._json(
            "POST",
            invoke_path(route_prefix, "/runsync"),
            params={"wait_s": f"{wait_s:g}"},
            timeout=_wait_timeout(wait_s),
            **job_request(path, method, arguments, assets, policy),
        )
        return result

    def job(self, route_prefix: str, job_id: str, wait_s: float = 0.0) -> dict[str, Any]:
        """A job as the server knows it; `wait_s` (at most 60) waits for it to finish first.

        Raises:
            JobNotFound: no such job for this service, or it is past its retention.
        """
        result: dict[str, Any] = self._json(
            "GET",
            invoke_path(route_prefix, f"/status/{_segment(job_id)}"),
            params={"wait_s": f"{wait_s:g}"},
            timeout=_wait_timeout(wait_s),
        )
        return result

    def cancel_job(self, route_prefix: str, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; returns it, CANCELLED. A finished job raises JobConflict."""
        result: dict[str, Any] = self._json("POST", invoke_path(route_prefix, f"/cancel/{_segment(job_id)}"))
        return result

    def retry_job(self, route_prefix: str, job_id: str) -> dict[str, Any]:
        """Queue a FAILED or TIMED_OUT job again; returns it, IN_QUEUE. Other states raise JobConflict."""
        result: dict[str, Any] = self._json("POST", invoke_path(route_prefix, f"/retry/{_segment(job_id)}"))
        return result

    def job_output(self, job: dict[str, Any]) -> Any:
        """A finished job's output: inline, or downloaded from its `output_url` when it was too large."""
        if not job.get("output_url"):
            return job.get("output")
        response = self._http.get(job["output_url"], timeout=TRANSFER_TIMEOUT, follow_redirects=True)
        raise_for_error(response)
        return decode_result(response, downloaded=True)

    def service_health(self, route_prefix: str) -> dict[str, Any]:
        """A service's queue counts by status, and its workers: `{"jobs": {...}, "workers": {...}}`."""
        result: dict[str, Any] = self._json("GET", invoke_path(route_prefix, "/health"))
        return result

    def purge_queue(self, route_prefix: str) -> dict[str, Any]:
        """Cancel every queued job of a service (running ones finish): `{"removed": n}`."""
        result: dict[str, Any] = self._json("POST", invoke_path(route_prefix, "/purge-queue"))
        return result

    def list_jobs(
        self, service: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Jobs, newest first, without their outputs (owner only)."""
        result: list[dict[str, Any]] = self._json("GET", "/v1/jobs", params=_jobs_query(service, status, limit))
        return result

    def queue(self, name: str) -> dict[str, Any]:
        """A service's queue: `{"service", "queued", "running", "max_queued", "versions": [...]}` (owner only)."""
        result: dict[str, Any] = self._json("GET", f"/v1/queues/{_segment(name)}")
        return result

    def queue_position(self, job_id: str) -> dict[str, Any]:
        """Where a queued job stands: `{"id", "status", "position", "reason"}` (1 is next; None once started)."""
        result: dict[str, Any] = self._json("GET", f"/v1/queues/position/{_segment(job_id)}")
        return result

    # -- assets ----------------------------------------------------------------------------------------------------

    def upload_asset(
        self,
        source: str | Path | bytes,
        content_type: str | None = None,
        description: str = "",
        *,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Upload bytes or a file (streamed from disk, never read whole) as an asset, for an invocation to name.

        Args:
            source: the bytes, or the path of a file.
            content_type: its media type [default: guessed from the file name, else application/octet-stream].
            description: a note shown by `list_assets`.
            on_progress: called with the number of bytes sent after each chunk.

        Returns:
            The asset, UPLOADED: `{"asset_id": "ast-…", "size", "sha256", ...}`.

        Example:
            >>> asset = client.upload_asset("photo.png")
            >>> client.invoke("/resize", "/resize", arguments={"width": 100}, assets=[asset["asset_id"]])
        """
        size = _upload_size(source)
        created = self._json("POST", "/v1/assets", json=_asset_request(source, content_type, description))
        content = source if isinstance(source, bytes) else _file_chunks(Path(source), on_progress)
        try:
            response = self._http.put(
                created["upload_url"], content=content, headers=_upload_headers(size), timeout=TRANSFER_TIMEOUT
            )
            raise_for_error(response)
        except BaseException:
            self._forget_asset(created["asset_id"])
            raise
        if isinstance(source, bytes) and on_progress is not None:
            on_progress(size)
        result: dict[str, Any] = response.json()
        return result

    def _forget_asset(self, asset_id: str) -> None:
        """Delete an asset whose upload failed, so it is not left CREATED; a failure here changes nothing."""
        with contextlib.suppress(httpx.HTTPError):
            self._http.delete(f"/v1/assets/{_segment(asset_id)}", timeout=5.0)

    def list_assets(self) -> list[dict[str, Any]]:
        """The assets this caller may see."""
        result: list[dict[str, Any]] = self._json("GET", "/v1/assets")
        return result

    def get_asset(self, asset_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/assets/{_segment(asset_id)}")
        return result

    @overload
    def download_asset(self, asset_id: str, dest: None = None) -> bytes: ...

    @overload
    def download_asset(self, asset_id: str, dest: str | Path) -> Path: ...

    def download_asset(self, asset_id: str, dest: str | Path | None = None) -> bytes | Path:
        """An asset's bytes; with `dest` (a file, or a folder to put `<asset_id>` in), streamed there, and its path."""
        path = f"/v1/assets/{_segment(asset_id)}/content"
        if dest is None:
            response = self._http.get(path, timeout=TRANSFER_TIMEOUT)
            raise_for_error(response)
            return response.content
        target = _output_path(dest, asset_id)
        with self._http.stream("GET", path, timeout=TRANSFER_TIMEOUT) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            with target.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return target

    def delete_asset(self, asset_id: str) -> None:
        """Delete an asset; invocations naming it afterwards fail with AssetNotFound."""
        raise_for_error(self._http.delete(f"/v1/assets/{_segment(asset_id)}"))


class AsyncClient:
    """The asynchronous twin of `Client`, method for method."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None) -> None:
        settings = ClientSettings.from_env(url, api_key)
        self.url = settings.url
        self.api_key = settings.api_key
        self._http = httpx.AsyncClient(base_url=self.url, headers=_headers(settings.api_key), timeout=CONTROL_TIMEOUT)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        raise_for_error(response)
        return response.json()

    async def get_service(self, name_or_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/services/{_segment(name_or_id)}")
        return result

    async def list_services(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/v1/services")
        return result

    async def teardown(self, name_or_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("DELETE", f"/v1/services/{_segment(name_or_id)}")
        return result

    async def disable(self, name_or_id: str) -> dict[str, Any]:
        """The async twin of `Client.disable`."""
        result: dict[str, Any] = await self._json("POST", f"/v1/services/{_segment(name_or_id)}/disable")
        return result

    async def enable(self, name_or_id: str) -> dict[str, Any]:
        """The async twin of `Client.enable`."""
        result: dict[str, Any] = await self._json("POST", f"/v1/services/{_segment(name_or_id)}/enable")
        return result

    async def invoke(
        self,
        route_prefix: str,
        path: str,
        method: str = "POST",
        arguments: dict[str, Any] | None = None,
        *,
        assets: Sequence[str] | None = None,
        accept: str | None = None,
    ) -> Any:
        response = await self._http.request(
            method,
            invoke_path(route_prefix, path),
            timeout=INVOKE_TIMEOUT,
            follow_redirects=True,
            **invoke_request(method, arguments or {}, assets, accept),
        )
        raise_for_error(response)
        return decode_result(response)

    async def stream(
        self, route_prefix: str, path: str, method: str = "POST", arguments: dict[str, Any] | None = None
    ) -> AsyncIterator[str | bytes]:
        request = invoke_request(method, arguments or {})
        request["headers"]["accept"] = "text/event-stream"
        async with self._http.stream(
            method, invoke_path(route_prefix, path), timeout=INVOKE_TIMEOUT, **request
        ) as response:
            if not response.is_success:
                await response.aread()
                raise_for_error(response)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                async for raw in response.aiter_bytes():  # a stream with a media type of its own: its raw bytes
                    yield raw
                return
            reader = EventReader()
            async for piece in response.aiter_bytes():
                for event in reader.feed(piece):
                    yield _chunk(event)

    # -- jobs (docs/JOBS.md) -------------------------------------------------------------------------------------

    async def submit(
        self,
        route_prefix: str,
        path: str,
        method: str = "POST",
        arguments: dict[str, Any] | None = None,
        *,
        assets: Sequence[str] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST", invoke_path(route_prefix, "/run"), **job_request(path, method, arguments, assets, policy)
        )
        return result

    async def run_sync(
        self,
        route_prefix: str,
        path: str,
        method: str = "POST",
        arguments: dict[str, Any] | None = None,
        wait_s: float = 90.0,
        *,
        assets: Sequence[str] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST",
            invoke_path(route_prefix, "/runsync"),
            params={"wait_s": f"{wait_s:g}"},
            timeout=_wait_timeout(wait_s),
            **job_request(path, method, arguments, assets, policy),
        )
        return result

    async def job(self, route_prefix: str, job_id: str, wait_s: float = 0.0) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "GET",
            invoke_path(route_prefix, f"/status/{_segment(job_id)}"),
            params={"wait_s": f"{wait_s:g}"},
            timeout=_wait_timeout(wait_s),
        )
        return result

    async def cancel_job(self, route_prefix: str, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", invoke_path(route_prefix, f"/cancel/{_segment(job_id)}"))
        return result

    async def retry_job(self, route_prefix: str, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", invoke_path(route_prefix, f"/retry/{_segment(job_id)}"))
        return result

    async def job_output(self, job: dict[str, Any]) -> Any:
        if not job.get("output_url"):
            return job.get("output")
        response = await self._http.get(job["output_url"], timeout=TRANSFER_TIMEOUT, follow_redirects=True)
        raise_for_error(response)
        return decode_result(response, downloaded=True)

    async def service_health(self, route_prefix: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", invoke_path(route_prefix, "/health"))
        return result

    async def purge_queue(self, route_prefix: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", invoke_path(route_prefix, "/purge-queue"))
        return result

    async def list_jobs(
        self, service: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/v1/jobs", params=_jobs_query(service, status, limit))
        return result

    async def queue(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/queues/{_segment(name)}")
        return result

    async def queue_position(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/queues/position/{_segment(job_id)}")
        return result

    # -- assets ----------------------------------------------------------------------------------------------------

    async def upload_asset(
        self,
        source: str | Path | bytes,
        content_type: str | None = None,
        description: str = "",
        *,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        size = _upload_size(source)
        created = await self._json("POST", "/v1/assets", json=_asset_request(source, content_type, description))
        content = source if isinstance(source, bytes) else _afile_chunks(Path(source), on_progress)
        try:
            response = await self._http.put(
                created["upload_url"], content=content, headers=_upload_headers(size), timeout=TRANSFER_TIMEOUT
            )
            raise_for_error(response)
        except BaseException:
            await self._forget_asset(created["asset_id"])
            raise
        if isinstance(source, bytes) and on_progress is not None:
            on_progress(size)
        result: dict[str, Any] = response.json()
        return result

    async def _forget_asset(self, asset_id: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await self._http.delete(f"/v1/assets/{_segment(asset_id)}", timeout=5.0)

    async def list_assets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/v1/assets")
        return result

    async def get_asset(self, asset_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/assets/{_segment(asset_id)}")
        return result

    @overload
    async def download_asset(self, asset_id: str, dest: None = None) -> bytes: ...

    @overload
    async def download_asset(self, asset_id: str, dest: str | Path) -> Path: ...

    async def download_asset(self, asset_id: str, dest: str | Path | None = None) -> bytes | Path:
        path = f"/v1/assets/{_segment(asset_id)}/content"
        if dest is None:
            response = await self._http.get(path, timeout=TRANSFER_TIMEOUT)
            raise_for_error(response)
            return response.content
        target = _output_path(dest, asset_id)
        async with self._http.stream("GET", path, timeout=TRANSFER_TIMEOUT) as response:
            if not response.is_success:
                await response.aread()
                raise_for_error(response)
            with target.open("wb") as handle:
                async for chunk in response.aiter_bytes():
                    handle.write(chunk)
        return target

    async def delete_asset(self, asset_id: str) -> None:
        raise_for_error(await self._http.delete(f"/v1/assets/{_segment(asset_id)}"))


def _jobs_query(service: str | None, status: str | None, limit: int) -> dict[str, str | int]:
    query: dict[str, str | int] = {"limit": limit}
    if service is not None:
        query["service"] = service
    if status is not None:
        query["status"] = status.upper()
    return query


def _upload_headers(size: int) -> dict[str, str]:
    # An explicit length lets the server refuse an oversized upload at once, and keeps httpx from chunking.
    return {"content-type": "application/octet-stream", "content-length": str(size)}

"""`Client` and `AsyncClient`: the server's HTTP API as Python methods, sync and async, over httpx.

Both build requests with the same helpers and turn the error envelope back into the matching
`FnserveError`, so `except fs.errors.ServiceNotFound` works on the client too.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson

from fnserve.errors import InternalError, error_from_code
from fnserve.settings import ClientSettings

CONTROL_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# An invocation may run as long as the server lets it (300 s by default); streams may pause between chunks.
INVOKE_TIMEOUT = httpx.Timeout(330.0, connect=5.0)


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


def invoke_path(route_prefix: str, path: str) -> str:
    return (route_prefix.rstrip("/") + path) if route_prefix != "/" else path


def invoke_request(method: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments for an invocation: JSON body, or query parameters for GET and DELETE."""
    if method in ("GET", "DELETE"):
        return {"params": {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in arguments.items()}}
    return {"content": orjson.dumps(arguments), "headers": {"content-type": "application/json"}}


def parse_sse(lines: Iterator[str]) -> Iterator[str]:
    """Chunks from a text/event-stream; an `event: error` raises the error it carries."""
    event, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                payload = "\n".join(data)
                if event == "error":
                    error = orjson.loads(payload)["error"]
                    raise error_from_code(error["code"], error["message"], error.get("details"))
                yield payload
            event, data = "message", []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()


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

    def upload(self, data: bytes) -> str:
        """Store bytes on the server by their sha256 (skipped when already there); returns the digest."""
        digest = hashlib.sha256(data).hexdigest()
        if self._http.head(f"/v1/artifacts/{digest}").status_code != 200:
            self._json("PUT", f"/v1/artifacts/{digest}", content=data)
        return digest

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/v1/services", json=body)
        return result

    def get_service(self, name_or_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/services/{name_or_id}")
        return result

    def list_services(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/v1/services")
        return result

    def teardown(self, name_or_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("DELETE", f"/v1/services/{name_or_id}")
        return result

    def rollback(self, name_or_id: str, to: int | None = None) -> dict[str, Any]:
        """Serve an earlier version again (default: the previous one), blue/green."""
        result: dict[str, Any] = self._json("POST", f"/v1/services/{name_or_id}/rollback", json={"to": to})
        return result

    def service_info(self, route_prefix: str) -> dict[str, Any]:
        """A service's `/info` (owner only)."""
        result: dict[str, Any] = self._json("GET", invoke_path(route_prefix, "/info"))
        return result

    def create_token(self, name_or_id: str, label: str = "") -> dict[str, Any]:
        """A new invocation token for one service; its secret (`token`) is in this answer only."""
        result: dict[str, Any] = self._json("POST", f"/v1/functions/{name_or_id}/tokens", json={"label": label})
        return result

    def list_tokens(self, name_or_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"/v1/functions/{name_or_id}/tokens")
        return result

    def revoke_token(self, name_or_id: str, token_ref: str) -> dict[str, Any]:
        """Revoke a token by id or hint; it stops working at once."""
        result: dict[str, Any] = self._json("DELETE", f"/v1/functions/{name_or_id}/tokens/{token_ref}")
        return result

    def health(self) -> bool:
        try:
            return self._http.get("/-/healthz", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def invoke(
        self, route_prefix: str, path: str, method: str = "POST", arguments: dict[str, Any] | None = None
    ) -> Any:
        """Call an endpoint and return its decoded JSON result."""
        response = self._http.request(
            method, invoke_path(route_prefix, path), timeout=INVOKE_TIMEOUT, **invoke_request(method, arguments or {})
        )
        raise_for_error(response)
        return response.json()

    def stream(
        self, route_prefix: str, path: str, method: str = "POST", arguments: dict[str, Any] | None = None
    ) -> Iterator[str]:
        """Call a streaming endpoint; yields each chunk as text as soon as the server sends it."""
        request = invoke_request(method, arguments or {})
        request.setdefault("headers", {})["accept"] = "text/event-stream"
        with self._http.stream(method, invoke_path(route_prefix, path), timeout=INVOKE_TIMEOUT, **request) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            yield from parse_sse(response.iter_lines())


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
        result: dict[str, Any] = await self._json("GET", f"/v1/services/{name_or_id}")
        return result

    async def list_services(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/v1/services")
        return result

    async def teardown(self, name_or_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("DELETE", f"/v1/services/{name_or_id}")
        return result

    async def invoke(
        self, route_prefix: str, path: str, method: str = "POST", arguments: dict[str, Any] | None = None
    ) -> Any:
        response = await self._http.request(
            method, invoke_path(route_prefix, path), timeout=INVOKE_TIMEOUT, **invoke_request(method, arguments or {})
        )
        raise_for_error(response)
        return response.json()

    async def stream(
        self, route_prefix: str, path: str, method: str = "POST", arguments: dict[str, Any] | None = None
    ) -> AsyncIterator[str]:
        request = invoke_request(method, arguments or {})
        request.setdefault("headers", {})["accept"] = "text/event-stream"
        async with self._http.stream(
            method, invoke_path(route_prefix, path), timeout=INVOKE_TIMEOUT, **request
        ) as response:
            if not response.is_success:
                await response.aread()
                raise_for_error(response)
            buffer: list[str] = []
            async for line in response.aiter_lines():
                buffer.append(line)
                if line == "":
                    for chunk in parse_sse(iter(buffer)):
                        yield chunk
                    buffer = []
            for chunk in parse_sse(iter([*buffer, ""])):
                yield chunk

"""`Request`: what an endpoint parameter annotated `fs.Request` receives, the HTTP request as it came (method, path,
headers, query, body), for webhooks and other callers whose body is not arguments.

The gateway sends it only to endpoints that take one (gateway/app.py); the replica builds it (runtime/invoke.py).
"""

from __future__ import annotations

from typing import Any

import orjson

# Where the request's facts travel in a CALL's context: {"method", "path", "headers": [[name, value]], "query"}.
REQUEST_KEY = "request"


class Request:
    """The HTTP request, as an endpoint parameter annotated `fs.Request` receives it.

    Attributes:
        method: `"POST"`, `"GET"`, ...
        path: the path under the service's prefix, e.g. `"/webhook"`.
        headers: the request headers, names in lower case (a repeated header's values joined with ", "); the
            `authorization` header that carried the service's token is left out.
        query: the query string's parameters (the last value of a repeated name).
        body: the raw body, whatever its content type.

    Example:
        >>> @svc.endpoint("/webhook")
        ... def webhook(request: fs.Request) -> dict:
        ...     verify(request.headers["x-hub-signature-256"], request.body)
        ...     return {"event": request.json()["action"]}

    The body goes to the `Request` whole, never to other parameters; those come from the path and query string.
    """

    __slots__ = ("body", "headers", "method", "path", "query")

    def __init__(
        self, method: str, path: str, headers: dict[str, str], query: dict[str, str], body: bytes = b""
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.query = query
        self.body = body

    def json(self) -> Any:
        """The body decoded as JSON (ValueError when it is not)."""
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path}, {len(self.body)} bytes)"


def from_context(facts: dict[str, Any], body: bytes) -> Request:
    headers: dict[str, str] = {}
    for name, value in facts["headers"]:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(facts["method"], facts["path"], headers, facts["query"], body)

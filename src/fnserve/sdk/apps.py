"""Existing apps as services: `fs.asgi_service(app, name=...)` for an app object, an `@fs.service` function that
returns one (its factory), and what `fnserve deploy app.py:app` makes of an app (docs/APPS.md).

The replica serves the app (fnserve/apps/); here is only how a service says it is one.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, Literal

from fnserve.apps.load import app_kind, is_asgi_app
from fnserve.errors import SpecError
from fnserve.sdk.environment import Environment
from fnserve.sdk.service import Service
from fnserve.spec import Autoscaling, Resources

# The attribute of a service made by `asgi_service` that holds its app (found again by `fnserve deploy app.py:app`).
APP_ATTRIBUTE = "served_app"


def asgi_service(
    app: Any,
    *,
    name: str,
    resources: Resources | None = None,
    replicas: int | None = None,
    route_prefix: str | None = None,
    auth: bool = True,
    time_limit: float | str | None = None,
    autoscaling: Autoscaling | None = None,
    max_ongoing_requests: int | None = None,
    max_queued_requests: int = 1024,
    max_body_bytes: int | None = None,
    requirements: list[str] | None = None,
    env: str | Environment | None = None,
    python: str | None = None,
) -> Service[Any]:
    """Serve an existing app as a service: an ASGI app (FastAPI, Starlette) as it is, a WSGI app (Flask) through an
    adapter, under the route prefix, with fnserve's tokens, replicas, autoscaling, versions, logs and metrics around it.

    Every path and method under the prefix is the app's (its own `/docs` and `/openapi.json` too: it sees the prefix
    as its `root_path`), but for `/-/ping`, `/-/info` and `/-/versions/N/...`; streams, Server-Sent Events and
    WebSockets pass through. `fnserve deploy app.py:app` does the same for a module's app.

    Args:
        app: the ASGI or WSGI app.
        name: the service name; the route prefix is `/<name>` unless `route_prefix` says otherwise.
        max_body_bytes: the largest request body the app takes (default: the server's, `FNSERVE_MAX_BODY_BYTES`);
            bodies reach the app in parts as they arrive, whatever their size.
        resources, replicas, route_prefix, auth, time_limit, autoscaling, max_ongoing_requests,
        max_queued_requests, requirements, env, python: as for `@fs.service`.

    Example:
        >>> from fastapi import FastAPI
        >>> api = FastAPI()
        >>> @api.get("/items/{item_id}")
        ... def item(item_id: int) -> dict[str, int]:
        ...     return {"item_id": item_id}
        >>> service = fs.asgi_service(api, name="items", replicas=2)
    """
    kind = app_kind(app)
    if kind is None:
        raise SpecError(
            "fs.asgi_service() takes an ASGI app (FastAPI, Starlette) or a WSGI app (Flask), got "
            f"{type(app).__name__}; for a function that makes the app, decorate it with @fs.service instead"
        )

    def serve_app() -> Any:
        return app

    # Deploying pickles the service with the module it comes from: the caller's, where the app was made.
    serve_app.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)
    serve_app.__name__ = serve_app.__qualname__ = name
    service = Service(
        serve_app,
        name=name,
        resources=resources,
        replicas=replicas,
        route_prefix=route_prefix,
        auth=auth,
        time_limit=time_limit,
        autoscaling=autoscaling,
        max_ongoing_requests=max_ongoing_requests,
        max_queued_requests=max_queued_requests,
        requirements=requirements,
        env=env,
        python=python,
    )
    serve_as_app(service, kind, max_body_bytes=max_body_bytes)
    setattr(service, APP_ATTRIBUTE, app)
    return service


def serve_as_app(
    service: Service[Any], kind: Literal["asgi", "wsgi", "command"], *, max_body_bytes: int | None = None
) -> None:
    """Mark `service` as serving an app of this kind (its spec's `http_app`)."""
    if max_body_bytes is not None and (
        isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes <= 0
    ):
        raise SpecError(f"max_body_bytes must be a number of bytes > 0, got {max_body_bytes!r}; None: the server's")
    service.http_app = kind
    service.max_body_bytes = max_body_bytes


def app_object(found: Any) -> bool:
    """Whether a module's attribute is an app `fnserve deploy app.py` finds by itself: an ASGI or WSGI app object
    (FastAPI, Starlette, Flask). A plain function is one only when named (`app.py:app`): a module's imported
    coroutine functions are not apps."""
    if inspect.isroutine(found) or inspect.isclass(found):
        return False
    return is_asgi_app(found) or (hasattr(found, "wsgi_app") and app_kind(found) == "wsgi")

"""What kind of app an object is, and the one ASGI app a replica serves for it (`as_asgi`)."""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fnserve.spec import ServiceSpec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_asgi_app(obj: Any) -> bool:
    """An ASGI 3 app: a coroutine function taking (scope, receive, send), or an object whose `__call__` is one
    (FastAPI, Starlette, most middleware)."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - the method itself, to see whether it is a coroutine function
    return inspect.iscoroutinefunction(call)


def is_wsgi_app(obj: Any) -> bool:
    """A WSGI app: Flask (and anything with `wsgi_app`), or a plain callable taking (environ, start_response)."""
    if inspect.isclass(obj) or not callable(obj) or is_asgi_app(obj):
        return False
    if hasattr(obj, "wsgi_app"):
        return True
    try:
        parameters = [
            parameter
            for parameter in inspect.signature(obj).parameters.values()
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(parameters) == 2


def app_kind(obj: Any) -> Literal["asgi", "wsgi"] | None:
    """ "asgi" or "wsgi" for an app object, None for anything else."""
    if is_asgi_app(obj):
        return "asgi"
    if is_wsgi_app(obj):
        return "wsgi"
    return None


def as_asgi(obj: Any, spec: ServiceSpec, *, max_threads: int = 8) -> ASGIApp:
    """The ASGI app a replica serves for an app service (`spec.http_app` is set): `obj` is what its initializer
    returned (the app itself, or what a factory made). An app declared one kind that turns out to be the other (a
    factory's result is only known here) is served as what it is. TypeError when it is no app at all.

    The adapters are imported only by the services that need them (`apps/wsgi.py`, `apps/command.py`)."""
    if spec.http_app == "command":
        assert spec.command is not None  # the spec's own check
        command: Any = importlib.import_module("fnserve.apps.command")
        return command.CommandApp.from_spec(spec.command, cwd=Path.cwd())  # type: ignore[no-any-return]
    found = app_kind(obj)
    if found == "asgi":
        return obj  # type: ignore[no-any-return]
    if found == "wsgi":
        wsgi: Any = importlib.import_module("fnserve.apps.wsgi")
        return wsgi.WsgiApp(obj, max_threads=max_threads)  # type: ignore[no-any-return]
    raise TypeError(
        f"an app service's initializer must return an ASGI app (FastAPI, Starlette) or a WSGI app (Flask), got "
        f"{type(obj).__name__}; a service with endpoints of its own returns a dict of values for them"
    )


def factory_kind(initializer: Callable[..., Any]) -> Literal["asgi", "wsgi"] | None:
    """For a function service with no endpoints: whether it makes an app. It does unless its return annotation says
    it returns something else (a dict of values, say); the annotation tells WSGI (Flask) from ASGI when it is there, and
    the replica serves what the function made either way (apps/load.py)."""
    try:
        hints = typing.get_type_hints(initializer)
    except Exception:  # a forward reference that does not resolve here: read it as written
        hints = dict(getattr(initializer, "__annotations__", {}))
    if "return" not in hints:
        return "asgi"
    returned = hints["return"]
    if isinstance(returned, str):
        if "Flask" in returned or "WSGI" in returned:
            return "wsgi"
        return "asgi" if any(word in returned for word in ("FastAPI", "Starlette", "ASGI")) else None
    if inspect.isclass(returned):
        if hasattr(returned, "wsgi_app"):
            return "wsgi"
        if inspect.iscoroutinefunction(getattr(returned, "__call__", None)):  # noqa: B004
            return "asgi"
    return None

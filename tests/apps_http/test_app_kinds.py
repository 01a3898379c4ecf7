"""Which objects are apps, which function services are app factories, and what a spec says of them (no server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

import fnserve as fs
from fnserve.apps.load import app_kind, as_asgi, factory_kind
from fnserve.errors import SpecError
from fnserve.sdk.apps import app_object


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """The smallest ASGI app."""


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    return []


def test_asgi_and_wsgi_apps_are_told_apart() -> None:
    assert app_kind(FastAPI()) == "asgi"
    assert app_kind(Starlette()) == "asgi"
    assert app_kind(raw_app) == "asgi"
    assert app_kind(wsgi_app) == "wsgi"
    assert app_kind({"not": "an app"}) is None
    assert app_kind(FastAPI) is None  # the class, not an app


def test_only_app_objects_are_found_without_a_name() -> None:
    assert app_object(FastAPI())
    assert not app_object(raw_app)  # a function is an app only when named: app.py:raw_app
    assert not app_object(asyncio.sleep)


def test_a_function_with_no_endpoints_makes_an_app_unless_annotated_otherwise() -> None:
    def unannotated():  # type: ignore[no-untyped-def]
        return FastAPI()

    def annotated() -> FastAPI:
        return FastAPI()

    def values() -> dict[str, int]:
        return {}

    assert factory_kind(unannotated) == "asgi"
    assert factory_kind(annotated) == "asgi"
    assert factory_kind(values) is None


def test_the_spec_says_what_app_a_service_serves() -> None:
    @fs.service
    def factory() -> FastAPI:
        return FastAPI()

    @fs.service
    def plain() -> dict[str, int]:
        return {}

    served = fs.asgi_service(FastAPI(), name="served", max_body_bytes=1000)

    assert factory.spec.http_app == "asgi"
    assert factory.spec.default_max_ongoing_requests == 64
    assert plain.spec.http_app is None
    assert (served.spec.http_app, served.spec.max_body_bytes, served.spec.endpoints) == ("asgi", 1000, [])


def test_asgi_service_refuses_what_is_no_app() -> None:
    with pytest.raises(SpecError, match="takes an ASGI app"):
        fs.asgi_service({"a": 1}, name="nothing")


def test_as_asgi_serves_an_app_as_it_is_and_refuses_a_dict() -> None:
    app = FastAPI()
    spec = fs.asgi_service(app, name="api").spec

    assert as_asgi(app, spec) is app
    with pytest.raises(TypeError, match="must return an ASGI app"):
        as_asgi({}, spec)

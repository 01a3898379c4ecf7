"""Echoes what it gets, and counts how often its initializer ran (per replica)."""

import os
from typing import Any

import fnserve as fs


@fs.service(name="echo", replicas=1, auth=False)
def echo(greeting: str = "hello", shared: int = 1) -> dict[str, Any]:
    """Echoes arguments back."""
    return {"greeting": greeting, "shared": shared, "pid": os.getpid(), "init_calls": [1]}


@echo.endpoint("/echo")
def echo_args(text: str, greeting: str, shared: int = 0) -> dict[str, Any]:
    """Return the arguments as the endpoint received them."""
    return {"text": text, "greeting": greeting, "shared": shared}


@echo.endpoint("/whoami", method="GET")
def whoami(pid: int, init_calls: list[int]) -> dict[str, int]:
    """Which replica answered, and how many times its initializer ran."""
    return {"pid": pid, "init_calls": len(init_calls)}


@echo.endpoint("/items/{item_id}", method="GET")
def get_item(item_id: int, q: str = "") -> dict[str, Any]:
    return {"item_id": item_id, "type": type(item_id).__name__, "q": q}


@echo.endpoint("/boom")
def boom() -> None:
    raise ValueError("boom")


@echo.endpoint("/unserializable")
def unserializable() -> object:
    return object()


@echo.endpoint("/api")
def describe(_api: dict[str, Any]) -> dict[str, Any]:
    return _api


@echo.endpoint("/async")
async def async_echo(text: str) -> str:
    return text.upper()

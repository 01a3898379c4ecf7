"""Two services behind tokens (auth on, the default), for the security tests.

`secure_a` describes itself: initializer arguments for `/info`, a parameter the initializer fills in, a default
JSON cannot hold, docstring YAML for its OpenAPI document, and `_api`. `secure_b` only says which one it is.
"""

from typing import Any

from pydantic import BaseModel

import fnserve as fs


class Opaque:
    """A value JSON cannot hold; its str() is 600 characters, so `/info` shows the first 500."""

    def __str__(self) -> str:
        return "opaque:" + "x" * 593


OPAQUE = Opaque()


class Greeting(BaseModel):
    text: str
    number: int


@fs.service(name="secure_a")
def secure_a(greeting: str = "hello", where: object = None) -> dict[str, Any]:
    """Service A, behind tokens.

    Greets with what its initializer was given.
    """
    return {"greeting": greeting, "where": str(where)}


@secure_a.endpoint("/hello")
def hello_a(greeting: str, number: int = 42, style: Opaque = OPAQUE) -> Greeting:
    """Say the greeting with a number.

    The greeting comes from the initializer.
    ---
    tags: [greetings]
    responses:
      418:
        description: A teapot answered
    """
    return Greeting(text=f"{greeting} from a", number=number)


@secure_a.endpoint("/api", method="GET")
def describe_a(_api: dict[str, Any]) -> dict[str, Any]:
    """The API description the platform hands in."""
    return _api


@fs.service(name="secure_b")
def secure_b() -> dict[str, Any]:
    """Service B, behind tokens."""
    return {}


@secure_b.endpoint("/hello")
def hello_b(name: str = "world") -> str:
    """Say hello from B."""
    return f"hello {name} from b"

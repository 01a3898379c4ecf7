"""The classic: an initializer whose values are injected into endpoints, a plain route and a stream."""

import fnserve as fs


@fs.service(resources=fs.Resources(num_cpus=1, memory="1GB"), replicas=2, time_limit="2h", auth=False)
def greeter(message: str = "Hello, world!") -> dict[str, object]:
    """Greets people."""
    return {"message": message, "items": (1, 5, "foo")}


@greeter.endpoint("/hello")
def hello(message: str, number: int = 42) -> str:
    """Say the message with a favorite number."""
    return f"{message} My favorite number is {number}"


@greeter.endpoint("/stream", streaming=True)
def stream(message: str, items: tuple[int, int, str]):  # type: ignore[no-untyped-def]
    """Stream the message letter by letter, then the items."""
    yield from message
    yield f"Items: {' '.join(str(item) for item in items)}"
    yield "Done streaming"

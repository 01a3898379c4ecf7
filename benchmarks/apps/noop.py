"""The no-op service the gateway benchmarks load: the cheapest possible endpoint."""

import fnserve as fs


@fs.service(name="noop")  # auth on, like a real service: requests carry the owner key
def noop() -> dict[str, object]:
    """A service that does nothing, to measure the platform's own overhead."""
    return {}


@noop.endpoint("/noop")
def call() -> str:
    return "ok"

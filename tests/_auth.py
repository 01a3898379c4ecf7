"""Credentials for tests: the owner key of a server this test process runs, as request headers."""

from __future__ import annotations

from fnserve.auth import in_process_key


def owner(url: str) -> dict[str, str]:
    """`Authorization` with the owner key of the server at `url` (started in this process by `run_server`)."""
    key = in_process_key(url)
    assert key is not None, f"no server started by this process answers at {url}"
    return {"authorization": f"Bearer {key}"}

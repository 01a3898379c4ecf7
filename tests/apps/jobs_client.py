"""Endpoints for the job and asset client tests: quick, slow (to cancel), failing, flaky (to retry), big, `_assets`."""

import time
from pathlib import Path
from typing import Any

import fnserve as fs


@fs.service(name="jobsclient", replicas=1)
def jobs_client() -> dict[str, Any]:
    return {}


@jobs_client.endpoint("/quick")
def quick(message: str) -> str:
    return f"quick: {message}"


@jobs_client.endpoint("/items/{item_id}", method="GET")
def get_item(item_id: int, q: str = "") -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@jobs_client.endpoint("/sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@jobs_client.endpoint("/fail")
def fail(number: int) -> None:
    raise ValueError(f"bad number {number}")


@jobs_client.endpoint("/flaky")
def flaky(marker: str, _job: fs.JobContext | None = None) -> dict[str, Any]:
    """Fails the first time (and writes `marker`); succeeds from then on, saying which attempt it was."""
    if not Path(marker).exists():
        Path(marker).write_text("failed once")
        raise RuntimeError("first call fails")
    return {"attempt": None if _job is None else _job.attempt}


@jobs_client.endpoint("/big")
def big(size: int) -> str:
    return "x" * size


@jobs_client.endpoint("/read")
def read_assets(prefix: str, _assets: dict[str, Path]) -> list[list[str]]:
    """`[asset id, prefix + size + ":" + its first 16 bytes]` for each named asset, in the order the call named them."""
    read = []
    for asset_id, path in _assets.items():
        data = path.read_bytes()
        read.append([asset_id, f"{prefix}{len(data)}:{data[:16].decode()}"])
    return read

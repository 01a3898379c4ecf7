"""Services with their own health checks, which start failing when the test writes a replica's pid to a file."""

import os
from pathlib import Path
from typing import Any

import fnserve as fs


def _marked(flag: str) -> bool:
    """Whether `flag` names this replica's pid (the test writes it there to make this replica unhealthy)."""
    path = Path(flag)
    return path.exists() and str(os.getpid()) in path.read_text().split()


@fs.service(name="health_fn", replicas=2, auth=False)
def health_fn(flag: str) -> dict[str, Any]:
    """Two replicas; `@health_fn.health_check` reads the initializer's `flag` by name."""
    return {"flag": flag}


@health_fn.health_check
def storage_reachable(flag: str) -> None:
    if _marked(flag):
        raise RuntimeError(f"storage unreachable from pid {os.getpid()}")


@health_fn.endpoint("/whoami", method="GET")
def whoami() -> int:
    return os.getpid()


class HealthClass:
    """One replica whose `check_health` method returns False once its pid is in the flag file."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def check_health(self) -> bool:
        return not _marked(self.flag)

    @fs.endpoint("/whoami", method="GET")
    def whoami(self) -> int:
        return os.getpid()


health_class = fs.service(name="health_class", auth=False)(HealthClass)  # mypy ignores class decorators' return types

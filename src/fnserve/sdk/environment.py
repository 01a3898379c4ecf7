"""`fs.Environment`: a named, reusable set of packages that services run in with `@fs.service(env=...)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fnserve.envs.requirements import check_env_name, check_python_version, check_requirements
from fnserve.errors import SpecError


@dataclass(frozen=True)
class Environment:
    """A named environment: pip requirements and a Python version, built once by the server and shared by every
    service that names it (Covalent's `env="my-env"`).

    Deploying a service with `env=fs.Environment(...)` creates (or updates) it on the server; `create()` does it
    now. From a shell: `fnserve env create NAME -r requirements.txt`.

    Example:
        >>> sklearn = fs.Environment(name="sklearn", requirements=["scikit-learn==1.9.1"], python="3.11")
        >>> @fs.service(env=sklearn)
        ... def model(): ...
    """

    name: str
    requirements: list[str] = field(default_factory=list)
    python: str | None = None

    def __post_init__(self) -> None:
        try:
            check_env_name(self.name)
            object.__setattr__(self, "requirements", check_requirements(self.requirements))
            if self.python is not None:
                check_python_version(self.python)
        except ValueError as exc:
            raise SpecError(str(exc)) from None

    def create(self, *, url: str | None = None, api_key: str | None = None) -> dict[str, Any]:
        """Create or update it on the server; returns the server's view of it."""
        from fnserve.client.api import Client

        with Client(url, api_key=api_key) as client:
            return client.put_environment(self.name, self.requirements, self.python)

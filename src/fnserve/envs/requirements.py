"""Requirement sets: checked where they are written (the decorator, the CLI), read from a project's
requirements.txt or pyproject.toml, and reduced to the key that names their build.

Only the standard library and `packaging` here: the client and every replica import it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}(\.\d{1,2})?$")
MAX_REQUIREMENTS = 500


def check_requirements(requirements: object) -> list[str]:
    """The requirement strings as given (stripped), or ValueError naming the first bad entry and the fix.

    Example:
        >>> check_requirements(["scikit-learn==1.9.1", "numpy>=2"])
        ['scikit-learn==1.9.1', 'numpy>=2']
    """
    if isinstance(requirements, str) or not isinstance(requirements, list | tuple):
        raise ValueError(
            f"requirements must be a list of pip requirement strings, got {requirements!r}; "
            'for example ["scikit-learn==1.9.1", "numpy>=2"]'
        )
    if len(requirements) > MAX_REQUIREMENTS:
        raise ValueError(f"requirements lists {len(requirements)} entries; at most {MAX_REQUIREMENTS} are allowed")
    checked = []
    for index, entry in enumerate(requirements):
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"requirements[{index}] must be a non-empty string like 'numpy>=2', got {entry!r}")
        text = entry.strip()
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise ValueError(
                f"requirements[{index}] {entry!r} is not a valid requirement ({exc}); "
                "write it as pip does: 'name', 'name==1.2.3', 'name>=1,<2' or 'name[extra]'"
            ) from None
        if requirement.url is not None:
            raise ValueError(
                f"requirements[{index}] {entry!r} installs from a URL; fnserve installs from package indexes only, "
                "so name a published version instead"
            )
        checked.append(text)
    return checked


def check_python_version(python: object) -> None:
    if not isinstance(python, str) or not _PYTHON_VERSION.match(python):
        raise ValueError(f"python must be a version like '3.11' or '3.12.4', got {python!r}")


def check_env_name(name: object) -> None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ValueError(
            f"environment name must be 1-63 letters, digits, '_', '-' or '.', starting with a letter or digit; "
            f"got {name!r}"
        )


def normalized(requirements: list[str]) -> list[str]:
    """One spelling per requirement, sorted: two services asking for the same set share a build. fnserve itself is
    left out: every replica has the server's own, from the runtime (a project's pyproject.toml often lists it)."""
    parsed = (Requirement(entry) for entry in requirements)
    return sorted(
        {str(requirement) for requirement in parsed if canonical(requirement.name) != "fnserve"}, key=str.lower
    )


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them: `Scikit_Learn` is `scikit-learn`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_key(requirements: list[str], python: str) -> str:
    """The name of a requirement set's resolution: the same packages on the same Python give the same key."""
    text = python + "\n" + "\n".join(normalized(requirements))
    return hashlib.sha256(text.encode()).hexdigest()


def parse_requirements_text(text: str, *, source: str) -> list[str]:
    """The requirements of a requirements.txt: one per line, comments and blank lines skipped. Pip's options
    (`-r`, `-e`, `--index-url`) are refused, naming the line."""
    requirements = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ValueError(
                f"{source} line {number}: {line!r} is a pip option, which fnserve does not follow; "
                "list the packages themselves"
            )
        requirements.append(line)
    try:
        return check_requirements(requirements)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def project_requirements(root: Path) -> tuple[list[str], str] | None:
    """The dependency list of a project folder and where it came from: requirements.txt, else pyproject.toml's
    `[project] dependencies`; None when it has neither."""
    requirements_txt = root / "requirements.txt"
    if requirements_txt.is_file():
        return parse_requirements_text(requirements_txt.read_text(), source="requirements.txt"), "requirements.txt"
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            dependencies = tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies")
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"pyproject.toml is not valid TOML: {exc}") from None
        if dependencies is not None:
            try:
                return check_requirements(dependencies), "pyproject.toml"
            except ValueError as exc:
                raise ValueError(f"pyproject.toml [project] dependencies: {exc}") from None
    return None


@dataclass(frozen=True)
class EnvironmentSpec:
    """The environment one version runs in: its requirements and Python, the named environment they came from, and
    the lock its first build resolved them to (None until then). Stored with the version."""

    requirements: list[str]
    python: str
    env: str | None = None
    lock: str | None = None

    @property
    def key(self) -> str:
        return requirements_key(self.requirements, self.python)

    def to_json(self) -> dict[str, Any]:
        return {"requirements": self.requirements, "python": self.python, "env": self.env, "lock": self.lock}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvironmentSpec:
        return cls(
            requirements=list(data["requirements"]), python=data["python"], env=data.get("env"), lock=data.get("lock")
        )

"""Packages whose internals we use are bounded above in pyproject.toml, the bounds hold here, and CI tries the newest
versions they allow (scripts/newest-deps.sh)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parent.parent
# package: where we lean on its internals
LEANED_ON = {
    "uvicorn": "gateway/one_write.py subclasses its HttpToolsProtocol",
    "httptools": "gateway/one_write.py drives its parser through that protocol",
    "pydantic": "pins pydantic-core exactly",
    "pydantic-core": "gateway/schema_compiler.py and sdk/introspect.py build core schemas",
}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    parsed = [Requirement(text) for text in project["dependencies"]]
    return {requirement.name: requirement for requirement in parsed}


@pytest.mark.parametrize("package", sorted(LEANED_ON))
def test_packages_whose_internals_we_use_have_an_upper_bound_that_the_installed_version_meets(package: str) -> None:
    requirement = requirements()[package]

    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in requirement.specifier), (
        f"{package} needs an upper bound: {LEANED_ON[package]}"
    )
    assert requirement.specifier.contains(Version(version(package)))


def test_ci_runs_the_tests_at_the_newest_allowed_versions() -> None:
    script = (ROOT / "scripts" / "newest-deps.sh").read_text()

    assert "scripts/newest-deps.sh" in (ROOT / ".ci" / "run").read_text()
    assert all(package in script for package in LEANED_ON)

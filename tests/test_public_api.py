"""The public API is exactly what `fnserve.__all__` lists."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import fnserve


def test_all_lists_exactly_the_public_names() -> None:
    for name in fnserve.__all__:  # the client side loads on first use: this loads all of it
        assert hasattr(fnserve, name)
    # Submodules become package attributes once imported; only `errors` is public among them.
    public = {
        name
        for name, value in vars(fnserve).items()
        if not name.startswith("_") and (not isinstance(value, ModuleType) or name == "errors")
    }
    assert public | {"__version__"} == set(fnserve.__all__)
    assert sorted(dir(fnserve)) == sorted(fnserve.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        fnserve.Clinet  # noqa: B018


def test_a_replica_imports_none_of_the_client() -> None:
    """`import fnserve` (what every replica and user module runs) leaves httpx, rich and click unloaded."""
    script = "import sys, fnserve.runtime.worker; print(sorted({'httpx', 'rich', 'click', 'yaml'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

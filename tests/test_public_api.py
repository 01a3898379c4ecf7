"""The public API is exactly what `fnserve.__all__` lists."""

from __future__ import annotations

from types import ModuleType

import fnserve


def test_all_lists_exactly_the_public_names() -> None:
    # Submodules become package attributes once imported; only `errors` is public among them.
    public = {
        name
        for name, value in vars(fnserve).items()
        if not name.startswith("_") and (not isinstance(value, ModuleType) or name == "errors")
    }
    assert public | {"__version__"} == set(fnserve.__all__)
    for name in fnserve.__all__:
        assert hasattr(fnserve, name)

"""The public API is exactly what `fnserve.__all__` lists."""

from __future__ import annotations

import fnserve


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(fnserve) if not name.startswith("_")} - {
        "client",
        "sdk",
        "spec",
        "settings",
        "store",
        "gateway",
        "controlplane",
        "runtime",
        "backends",
        "openapi",
        "server",
        "testing",
    }
    assert public | {"__version__"} == set(fnserve.__all__)
    for name in fnserve.__all__:
        assert hasattr(fnserve, name)

"""Importing a package of the replica runtime late (inside a function) so that it works in a service's own environment
too, where the runtime's packages are set aside under private names (runtime/bootstrap.py)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

PRIVATE = "_fnserve_runtime"  # runtime/bootstrap.py sets the runtime's packages aside under this name


def runtime_module(name: str) -> ModuleType:
    """The runtime's own `name` (`yaml`, ...): set aside in an environment of the service's own, else imported."""
    return sys.modules.get(f"{PRIVATE}.{name}") or importlib.import_module(name)

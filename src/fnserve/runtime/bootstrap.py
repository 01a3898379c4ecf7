"""Start a replica inside a service's own environment, so that the service sees its own packages and only those.

Run by path with the environment's interpreter, in isolated mode (`python -I bootstrap.py OVERLAY WORKER-ARGS...`),
so nothing leaks in from the server's variables. The standard library only, until the overlay is on the path.

1. The worker and everything it imports come from the overlay (envs/runtime.py): fnserve and a few packages.
2. Those the environment also has are then set aside under private names (`_fnserve_runtime.pydantic`, ...): the
   worker keeps the module objects it already holds, and relative imports inside them still resolve, but
   `import pydantic` in the service finds the environment's own copy. Two copies of one package live side by side:
   the runtime's and the user's, pins included (pydantic 1, an old msgpack). The runtime's other packages keep
   their names (its own lazy imports find them); they are the only ones beyond the service's list it can import.
3. The overlay leaves the path, the environment's site-packages come back, and the worker starts.
"""

from __future__ import annotations

import os
import site
import sys
import types
from collections.abc import Callable

PRIVATE = "_fnserve_runtime"  # as fnserve._runtime_modules names it (not imported: it is not on the path yet)


def _top_level_names(site_dirs: list[str]) -> set[str]:
    """The importable top-level names an environment provides: packages, modules and extension modules."""
    names = set()
    for site_dir in site_dirs:
        try:
            entries = os.listdir(site_dir)
        except OSError:
            continue
        for entry in entries:
            if entry.endswith((".dist-info", ".egg-info", ".pth")) or entry.startswith(".") or entry == "__pycache__":
                continue
            names.add(entry.split(".", 1)[0])
    return names


def _set_aside(overlay: str, provided: set[str]) -> None:
    """Rename every module loaded from the overlay whose top-level name the environment provides too (except
    fnserve's own) into the private namespace."""
    prefix = os.path.join(overlay, "")
    sys.modules[PRIVATE] = types.ModuleType(PRIVATE, "the replica runtime's own packages, set aside")
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if top == "fnserve" or top == PRIVATE or top not in provided:
            continue
        location = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or []), None)
        if not isinstance(location, str) or not location.startswith(prefix):
            continue
        private = f"{PRIVATE}.{name}"
        del sys.modules[name]
        sys.modules[private] = module
        module.__name__ = private
        package = getattr(module, "__package__", None)
        if package:
            module.__package__ = f"{PRIVATE}.{package}"
        if module.__spec__ is not None:
            module.__spec__.name = private
        lookup = module.__dict__.get("__getattr__")
        if callable(lookup):  # a lazy package (pydantic) may look itself up by its old name: a miss, not a crash
            module.__getattr__ = _missing_as_attribute_error(lookup, private)  # type: ignore[method-assign]


def _missing_as_attribute_error(lookup: Callable[[str], object], name: str) -> Callable[[str], object]:
    """Tools that walk every loaded module (skops, inspect) probe attributes with getattr: they must get an
    AttributeError for what a set-aside package cannot find, whatever its own `__getattr__` raises."""

    def attribute(attribute_name: str) -> object:
        try:
            return lookup(attribute_name)
        except AttributeError:
            raise
        except Exception:
            raise AttributeError(f"module {name!r} has no attribute {attribute_name!r}") from None

    return attribute


def main() -> None:
    overlay, worker_args = sys.argv[1], sys.argv[2:]
    environment = [path for path in sys.path if path in site.getsitepackages()]
    base = [path for path in sys.path if path not in environment]
    sys.path[:] = [overlay, *base]
    from fnserve.runtime import worker
    from fnserve.runtime.preload import preload

    preload()
    _set_aside(overlay, _top_level_names(environment))
    sys.path[:] = [*base, *environment]
    if worker_args[:1] == ["--describe"]:  # runtime/describe.py: print the service's spec, then exit
        from fnserve.runtime import describe

        describe.main(worker_args[1:])
    worker.main(worker_args)


if __name__ == "__main__":
    main()

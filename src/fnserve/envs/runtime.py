"""The replica runtime an environment's interpreter borrows: fnserve itself and the few packages its worker imports,
gathered in one folder (the overlay) that no user package lives in.

A replica in a service's own environment imports these first, from the overlay, then sets them aside under private
names (runtime/bootstrap.py), so the service sees only its own packages: its pins win (pydantic 1, an old
msgpack), and a package it did not list is not there. On the server's own Python the overlay is a folder of
links into the server's environment (built in milliseconds, no copy); on another Python version, uv installs the
same versions into it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fnserve
from fnserve.runtime import bootstrap

BOOTSTRAP = Path(bootstrap.__file__)

# Top-level modules the worker imports (tests/envs/test_runtime.py checks this against a real worker's imports).
RUNTIME_MODULES = (
    "fnserve",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "msgpack",
    "orjson",
    "cloudpickle",
    "packaging",
    "yaml",
    "uvloop",
)
# The distributions that install them, for uv on another Python.
_DISTRIBUTIONS = {
    "pydantic": "pydantic",
    "pydantic_core": "pydantic-core",
    "annotated_types": "annotated-types",
    "typing_extensions": "typing-extensions",
    "typing_inspection": "typing-inspection",
    "msgpack": "msgpack",
    "orjson": "orjson",
    "cloudpickle": "cloudpickle",
    "packaging": "packaging",
    "yaml": "PyYAML",
    "uvloop": "uvloop",
}


def bootstrap_command(python: Path, overlay: Path, *args: str) -> list[str]:
    """How a process of a service's own environment starts (a replica, or `describe`): its interpreter in isolated
    mode (no PYTHONPATH, user site or current folder from the server), unbuffered, through runtime/bootstrap.py."""
    return [str(python), "-I", "-u", str(BOOTSTRAP), str(overlay), *args]


def server_python() -> str:
    """The server's own Python version, `major.minor`: what an environment gets when it names none."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _module_location(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin) if spec.origin else None


def _runtime_versions() -> dict[str, str]:
    versions = {"fnserve": fnserve.__version__}
    for module, distribution in _DISTRIBUTIONS.items():
        # Optional ones (uvloop, yaml) may be missing: the worker does without.
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[module] = importlib.metadata.version(distribution)
    return versions


def overlay_for(python: str, root: Path, python_executable: str) -> Path:
    """The overlay folder for environments on `python` (made once; later calls find it). Raises
    subprocess.CalledProcessError when uv cannot install the runtime for another Python."""
    versions = _runtime_versions()
    key = hashlib.sha256(repr((python, sorted(versions.items()), fnserve.__file__)).encode()).hexdigest()[:16]
    overlay = root / f"runtime-{python}-{key}"
    if overlay.is_dir():
        return overlay
    building = root / f".runtime-{python}-{key}.{os.getpid()}.tmp"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    if python == server_python():
        for name in RUNTIME_MODULES:
            location = _module_location(name)
            if location is not None:
                (building / location.name).symlink_to(location)
    else:
        packages = [f"{_DISTRIBUTIONS[name]}=={version}" for name, version in versions.items() if name != "fnserve"]
        subprocess.run(
            [uv_executable(), "pip", "install", "--quiet", "--python", python_executable, "--target", str(building)]
            + packages,
            check=True,
            capture_output=True,
            text=True,
        )
        fnserve_dir = _module_location("fnserve")
        assert fnserve_dir is not None
        (building / "fnserve").symlink_to(fnserve_dir)
    try:
        building.rename(overlay)
    except OSError:  # another server made it meanwhile
        shutil.rmtree(building, ignore_errors=True)
    return overlay


def uv_executable() -> str:
    """uv, installed beside the server's interpreter as a dependency of fnserve (or found on PATH)."""
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise FileNotFoundError("uv is not installed; it is a dependency of fnserve: pip install uv")
    return found

"""What the environments folder holds: finished builds with their size, and what `prune` may remove."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnserve.envs.builder import read_meta


@dataclass(frozen=True)
class BuiltEnvironment:
    key: str
    path: Path
    meta: dict[str, Any]
    size_bytes: int


def folder_size(path: Path) -> int:
    """Bytes of the files under `path` (links not followed, so the runtime overlay's links count as nothing)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def list_builds(root: Path) -> list[BuiltEnvironment]:
    """Every finished environment under `root`, oldest first."""
    builds: list[BuiltEnvironment] = []
    if not root.is_dir():
        return builds
    for path in root.iterdir():
        if path.name.startswith((".", "runtime-")) or path.name == "resolved" or not path.is_dir():
            continue
        meta = read_meta(path)
        if meta is not None:
            builds.append(BuiltEnvironment(path.name, path, meta, folder_size(path)))
    return sorted(builds, key=lambda build: build.meta.get("built_at", 0))


def leftovers(root: Path) -> list[Path]:
    """Builds that never finished (the server was killed during them): never used, safe to delete."""
    if not root.is_dir():
        return []
    return [path for path in root.iterdir() if path.name.startswith(".") and path.name.endswith(".tmp")]


def remove(path: Path) -> int:
    """Delete a build; returns the bytes freed."""
    size = folder_size(path)
    shutil.rmtree(path, ignore_errors=True)
    return size

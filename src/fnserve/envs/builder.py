"""Building environments with uv: resolve a requirement set to a lock, install the lock into a venv, once per
content, shared by every deploy that needs it.

Layout under the environments folder (`$FNSERVE_HOME/envs`, or `FNSERVE_ENVS_DIR`):

    resolved/<requirements key>.txt   the lock a requirement set resolved to (later deploys skip resolving)
    <lock key>/                       a finished venv, with fnserve-env.json; only finished ones have this name
    .<lock key>.<pid>.tmp/            a venv being built: renamed into place when complete, so a build killed
                                      half-way (even by SIGKILL) is never used, and is removed by `prune`
    runtime-<python>-<key>/           the replica runtime for that Python (envs/runtime.py)

A deploy waits for its build in the BUILDING state (the supervisor), outside any replica's start timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnserve.envs.requirements import EnvironmentSpec, normalized, requirements_key
from fnserve.envs.runtime import overlay_for, server_python, uv_executable
from fnserve.errors import EnvBuildFailed

logger = logging.getLogger("fnserve.envs")

META_FILE = "fnserve-env.json"
FAILURE_TAIL_LINES = 15


@dataclass(frozen=True)
class BuiltEnv:
    """A finished environment: the interpreter replicas run on, and the runtime overlay they borrow."""

    key: str
    path: Path
    lock: str
    overlay: Path
    cached: bool  # True: it was there already, nothing was built

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


@dataclass
class BuildProgress:
    """Where a build stands; `text` is what the deployment's reason shows."""

    phase: str = "resolving"  # resolving, installing, done
    total: int = 0  # packages to install
    done: int = 0
    text: str = "resolving requirements"


Listener = Callable[[BuildProgress, str | None], None]  # progress, and a new log line (None: progress only)


@dataclass
class _Build:
    future: asyncio.Future[BuiltEnv]
    progress: BuildProgress = field(default_factory=BuildProgress)
    lines: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)

    def emit(self, line: str | None = None) -> None:
        if line is not None:
            self.lines.append(line)
        for listener in list(self.listeners):
            listener(self.progress, line)


class EnvBuilder:
    """Builds and finds environments. One build per requirement set at a time: concurrent deploys wait on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._builds: dict[str, _Build] = {}
        self._overlays: dict[str, Path] = {}  # by Python version

    async def ensure(self, spec: EnvironmentSpec, listener: Listener | None = None) -> BuiltEnv:
        """The environment for `spec`, built if it is not there. With `spec.lock` the lock is installed as it is
        (the same packages as the version's first build); otherwise the requirements are resolved, or their earlier
        resolution reused. Raises EnvBuildFailed with uv's own message."""
        key = f"{spec.python}:{spec.lock}" if spec.lock is not None else spec.key
        build = self._builds.get(key)
        if build is None:
            build = _Build(asyncio.get_running_loop().create_future())
            # Its failure is read by every waiter; with none left (all cancelled), asyncio must not report it unread.
            build.future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._builds[key] = build
            task = asyncio.create_task(self._run(spec, build))
            task.add_done_callback(lambda _: self._builds.pop(key, None))
        elif listener is not None:  # a latecomer sees what was logged so far
            for line in build.lines:
                listener(build.progress, line)
        if listener is not None:
            build.listeners.append(listener)
        try:
            return await asyncio.shield(build.future)
        finally:
            if listener is not None:
                with contextlib.suppress(ValueError):
                    build.listeners.remove(listener)

    async def _run(self, spec: EnvironmentSpec, build: _Build) -> None:
        try:
            built = await self._build(spec, build)
        except EnvBuildFailed as exc:
            build.future.set_exception(exc)
        except Exception as exc:  # a bug of ours, or the disk: the deploy fails with it rather than hanging
            logger.exception("Environment build for %s failed", spec.requirements)
            build.future.set_exception(EnvBuildFailed(f"the environment build failed: {exc!r}"))
        else:
            build.future.set_result(built)

    async def _build(self, spec: EnvironmentSpec, build: _Build) -> BuiltEnv:
        started = time.monotonic()
        python_executable = await asyncio.to_thread(self._interpreter, spec.python)
        lock = spec.lock or await self._resolve(spec, build)
        key = lock_key(lock, spec.python)
        path = self.root / key
        overlay = self._overlays.get(spec.python)
        if overlay is None:  # found or made once per Python: every later build, cached or not, reuses it
            overlay = self._overlays[spec.python] = await asyncio.to_thread(
                overlay_for, spec.python, self.root, python_executable
            )
        if (path / META_FILE).is_file():
            build.progress = BuildProgress("done", 0, 0, "cached")
            build.emit(f"Using the environment {key}, built before: no build")
            return BuiltEnv(key=key, path=path, lock=lock, overlay=overlay, cached=True)
        packages = len(lock_packages(lock))
        # Its own name: another build of the same lock (this server or another sharing the folder) may run too.
        building = self.root / f".{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        await self._uv(
            build, "creating the venv", "venv", "--quiet", "--relocatable", "--python", python_executable, building
        )
        lock_file = building / "fnserve-lock.txt"
        lock_file.write_text(lock)
        build.progress = BuildProgress("installing", packages, 0, f"installing {packages} packages")
        build.emit(f"Installing {packages} packages")
        if packages:  # a Python version alone: the venv is all there is
            await self._uv(
                build, "installing", "pip", "sync", "--python", building / "bin" / "python", lock_file, track=True
            )
        seconds = time.monotonic() - started
        meta = {
            "key": key,
            "requirements": normalized(spec.requirements),
            "python": spec.python,
            "packages": packages,
            "built_at": time.time(),
            "build_s": round(seconds, 2),
        }
        (building / META_FILE).write_text(json.dumps(meta, indent=2))
        try:
            building.rename(path)
        except OSError:  # another server finished the same environment first: use its copy
            shutil.rmtree(building, ignore_errors=True)
        build.progress = BuildProgress("done", packages, packages, f"installed {packages} packages in {seconds:.1f} s")
        build.emit(f"Installed {packages} packages in {seconds:.1f} s")
        return BuiltEnv(key=key, path=path, lock=lock, overlay=overlay, cached=False)

    def _interpreter(self, python: str) -> str:
        if python == server_python():
            return sys.executable
        return python  # uv finds an installed interpreter of that version, or says there is none

    async def _resolve(self, spec: EnvironmentSpec, build: _Build) -> str:
        """The lock for a requirement set: resolved once, then read back."""
        resolved = self.root / "resolved" / f"{requirements_key(spec.requirements, spec.python)}.txt"
        if resolved.is_file():
            return resolved.read_text()
        requirements = normalized(spec.requirements)
        if not requirements:
            return ""
        build.progress = BuildProgress("resolving", len(requirements), 0, f"resolving {len(requirements)} requirements")
        build.emit(f"Resolving {len(requirements)} requirements: {', '.join(requirements)}")
        output = await self._uv(
            build,
            "resolving",
            "pip",
            "compile",
            "-",
            "--python-version",
            spec.python,
            "--no-header",
            "--no-annotate",
            stdin="\n".join(requirements) + "\n",
        )
        resolved.parent.mkdir(parents=True, exist_ok=True)
        partial = resolved.with_suffix(f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        partial.write_text(output)
        partial.replace(resolved)
        return output

    async def _uv(
        self, build: _Build, step: str, *argv: str | Path, stdin: str | None = None, track: bool = False
    ) -> str:
        """Run uv, logging its lines as they come (and counting installed packages with `track`). Returns its
        standard output; raises EnvBuildFailed with its last lines."""
        self.root.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            uv_executable(),
            *(str(arg) for arg in argv),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"},
        )
        assert process.stdout is not None
        assert process.stderr is not None
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin.encode())
            await process.stdin.drain()
            process.stdin.close()
        tail: list[str] = []
        progress = _InstallProgress(build.progress) if track else None

        async def read_stderr() -> None:
            assert process.stderr is not None
            async for raw in process.stderr:
                line = raw.decode(errors="replace").rstrip()
                if not line:
                    continue
                tail.append(line)
                del tail[:-FAILURE_TAIL_LINES]
                if progress is not None:
                    progress.feed(line)
                build.emit(line)

        stdout, _ = await asyncio.gather(process.stdout.read(), read_stderr())
        if await process.wait() != 0:
            message = "\n".join(tail) or f"uv exited with {process.returncode}"
            raise EnvBuildFailed(f"{step} failed: {message}\n{_hint(message)}")
        return stdout.decode()


class _InstallProgress:
    """Counts what uv has done from the lines it prints: large downloads announce themselves ("Downloading
    scipy (33.7MiB)" then " Downloaded scipy"), and the end of each stage says how many packages it handled."""

    _PREPARED = re.compile(r"^Prepared (\d+) packages?")
    _INSTALLED = re.compile(r"^Installed (\d+) packages?")

    def __init__(self, progress: BuildProgress) -> None:
        self.progress = progress
        self.downloading: set[str] = set()
        self.downloaded = 0

    def feed(self, line: str) -> None:
        total = self.progress.total
        if line.startswith("Downloading "):
            self.downloading.add(line.split()[1])
        elif line.startswith(" Downloaded ") or line.startswith("Downloaded "):
            self.downloading.discard(line.split()[1])
            self.downloaded += 1
        elif self._PREPARED.match(line) or self._INSTALLED.match(line):
            self.downloading.clear()
        else:
            return
        if self.downloading:
            waiting = ", ".join(sorted(self.downloading))
            self.progress.done = max(0, total - len(self.downloading))
            self.progress.text = (
                f"installing {total} packages, {self.progress.done} of {total} done (downloading {waiting})"
            )
        else:
            self.progress.done = total
            self.progress.text = f"installing {total} packages, {total} of {total} done"


def _hint(message: str) -> str:
    if "No solution found" in message or "not found in the package registry" in message:
        return "Check the package names and versions (pypi.org), fix the requirements and deploy again."
    if "No interpreter found" in message or "No Python" in message:
        return "Install that Python on the server, or name one it has (its own by default)."
    return "Fix the requirements and deploy again; the whole build log: `fnserve build-log SERVICE`."


def lock_packages(lock: str) -> list[str]:
    """The `name==version` lines of a lock."""
    return [line.strip() for line in lock.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def lock_key(lock: str, python: str) -> str:
    return hashlib.sha256(f"{python}\n{lock}".encode()).hexdigest()[:16]


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta

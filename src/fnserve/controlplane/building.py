"""A version's environment made ready before its replicas start: built (or found) by the `EnvBuilder`, its progress
shown as the deployment's reason while it is BUILDING, its log kept beside the replica logs, and the lock of its
first build stored with the version so every later replica runs the same packages.

The supervisor calls `EnvironmentPreparer.prepare`; nothing here starts or stops replicas.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO

from fnserve.envs.builder import BuildProgress, BuiltEnv, EnvBuilder
from fnserve.home import private_fd
from fnserve.store import StateStore, VersionRecord
from fnserve.store.environments import EnvironmentStore

logger = logging.getLogger("fnserve.envs")


def build_log_path(home: Path, service_name: str, version_number: int) -> Path:
    return home / "logs" / service_name / f"build-v{version_number}.log"


class EnvironmentPreparer:
    def __init__(self, builder: EnvBuilder, store: StateStore, home: Path) -> None:
        self.builder = builder
        self.environments = EnvironmentStore(store.engine)
        self.home = home

    async def prepare(
        self, name: str, version: VersionRecord, on_progress: Callable[[BuildProgress], None]
    ) -> tuple[VersionRecord, BuiltEnv]:
        """The version's environment, and the version as it is now (with its lock). Raises EnvBuildFailed."""
        environment = version.environment
        assert environment is not None
        log_path = build_log_path(self.home, name, version.number)
        log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        started = time.monotonic()
        with os.fdopen(private_fd(log_path), "a", encoding="utf-8") as log:
            _write(
                log,
                f"Environment for {name} v{version.number}: python {environment.python}, requirements: "
                f"{', '.join(environment.requirements) or '(none)'}"
                + (f" (environment {environment.env!r})" if environment.env else ""),
            )
            if environment.lock is not None:
                _write(log, "Installing the lock stored with this version")

            def listen(progress: BuildProgress, line: str | None) -> None:
                if line is not None:
                    _write(log, line)
                on_progress(progress)

            try:
                built = await self.builder.ensure(environment, listen)
            except Exception as exc:
                _write(log, f"Build failed: {exc}")
                raise
            _write(log, f"Ready in {time.monotonic() - started:.2f} s: {built.path}")
        if environment.lock is None:
            environment = replace(environment, lock=built.lock)
            await asyncio.to_thread(
                self.environments.set_version_environment, version.version_id, environment.to_json()
            )
            version = replace(version, environment=environment)
        logger.info(
            "Environment [%s] for %s v%s %s", built.key, name, version.number, "found" if built.cached else "built"
        )
        return version, built


def _write(log: IO[str], line: str) -> None:
    log.write(line.rstrip() + "\n")
    log.flush()

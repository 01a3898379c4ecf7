"""The machine and software a benchmark ran on: CPUs, memory, kernel, Python, wrk, commit, package versions."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

from benchmarks.markdown import markdown_table
from benchmarks.targets import REPO_ROOT
from benchmarks.wrk import wrk_version

VERSIONED_PACKAGES = ("fnserve", "uvicorn", "starlette", "uvloop", "httptools", "orjson")


@dataclass(frozen=True)
class Environment:
    """The machine and software a run measured."""

    cpu_count: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    wrk: str
    commit: str
    versions: dict[str, str]


def _first_value(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        return None
    return None


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "uncommitted"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_environment(wrk: str | None) -> Environment:
    mem_kib = (_first_value("/proc/meminfo", "MemTotal") or "0 kB").split()[0]
    return Environment(
        cpu_count=os.cpu_count() or 0,
        cpu_model=_first_value("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        memory_gib=int(mem_kib) / 2**20,
        kernel=f"{platform.system()} {platform.release()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        wrk=wrk_version(wrk) if wrk else "not installed",
        commit=_commit(),
        versions={package: _version(package) for package in VERSIONED_PACKAGES},
    )


def machine_table(environment: Environment) -> str:
    """The machine, the load generator, the commit and the package versions, as a two-column table."""
    machine = [
        ["CPUs", f"{environment.cpu_count} × {environment.cpu_model}"],
        ["memory", f"{environment.memory_gib:.1f} GiB"],
        ["kernel", environment.kernel],
        ["python", environment.python],
        ["load generator", environment.wrk],
        ["commit", environment.commit],
    ] + [[package, version] for package, version in environment.versions.items()]
    return markdown_table(["", ""], machine, numeric_from=2)


def results_header(title: str, started_at: datetime, environment: Environment, *, command: str, script: str) -> str:
    """The top of every results file: what ran, when, where, on which commit, and that the notes are kept."""
    return f"""# {title}

- **Date:** {started_at:%Y-%m-%d %H:%M} UTC
- **Command:** `{command}`
- **Machine:** {environment.cpu_count} CPUs ({environment.cpu_model}), {environment.memory_gib:.1f} GiB, \
{environment.kernel}, {environment.python}
- **Commit:** {environment.commit}

Everything above the notes marker at the end of this file is rewritten by the next run;
`{script} --help` lists the options."""

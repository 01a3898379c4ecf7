"""Peer virtualenvs: each peer framework installed from its public packages into a venv of its own, outside the repo.

A peer's venv lives in `<cache>/peers/<name>`; the cache is `~/.cache/fnserve-bench` unless `--peer-cache` or
`$FNSERVE_BENCH_CACHE` says otherwise. It is built with uv when uv is on PATH, with `python -m venv` and pip
otherwise, from the same Python that runs the harness. A stamp file records what it was built from (the
requirements and the Python); a venv whose stamp matches is reused as it is, any other is rebuilt from scratch.
Nothing of the peers is committed: the apps they serve are ours (`benchmarks/peers/`), their code comes from PyPI.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.procs import start_process, stop_process_tree

CACHE_ENV_VAR = "FNSERVE_BENCH_CACHE"
STAMP_NAME = ".fnserve-bench-stamp"
INSTALL_TIMEOUT_S = 1800.0


class PeerInstallError(RuntimeError):
    """A peer's venv could not be built; the message says which step failed and names the install log."""


@dataclass(frozen=True)
class PeerEnv:
    """A built peer venv."""

    name: str
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, program: str) -> Path:
        return self.path / "bin" / program


def default_cache_dir() -> Path:
    """`$FNSERVE_BENCH_CACHE`, or `~/.cache/fnserve-bench`."""
    configured = os.environ.get(CACHE_ENV_VAR)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "fnserve-bench"


def _stamp(requirements: Sequence[str]) -> str:
    python = f"{platform.python_implementation()} {platform.python_version()} ({sys.base_prefix})"
    return orjson.dumps({"requirements": list(requirements), "python": python}).decode() + "\n"


def _run(argv: list[str], log_path: Path, what: str, timeout_s: float) -> None:
    process = start_process(argv, log_path=log_path)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise PeerInstallError(f"{what} did not finish within {timeout_s:g} s; log {log_path}") from None
    finally:
        stop_process_tree(process)
    if code != 0:
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
        raise PeerInstallError(f"{what} failed with code {code} ({tail}); log {log_path}")


def peer_env(name: str, cache_dir: Path) -> PeerEnv:
    """Where peer `name`'s venv lives under `cache_dir` (built or not)."""
    return PeerEnv(name=name, path=cache_dir / "peers" / name)


def ensure_env(
    env: PeerEnv, requirements: Sequence[str], *, log_path: Path, timeout_s: float = INSTALL_TIMEOUT_S
) -> None:
    """Make `env` a venv with `requirements` installed: kept when its stamp matches, else built anew.

    Raises:
        PeerInstallError: Creating the venv or installing the requirements failed or ran out of time.
    """
    name = env.name
    stamp = env.path / STAMP_NAME
    wanted = _stamp(requirements)
    if env.python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return
    shutil.rmtree(env.path, ignore_errors=True)
    env.path.parent.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv")
    if uv is not None:
        _run([uv, "venv", "--python", sys.executable, str(env.path)], log_path, f"`uv venv` for {name}", 300)
        install = [uv, "pip", "install", "--python", str(env.python), *requirements]
    else:
        _run([sys.executable, "-m", "venv", str(env.path)], log_path, f"`python -m venv` for {name}", 300)
        install = [str(env.python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", *requirements]
    _run(install, log_path, f"installing {' '.join(requirements)} for {name}", timeout_s)
    stamp.write_text(wanted)


def installed_versions(env: PeerEnv, packages: Sequence[str]) -> dict[str, str]:
    """The versions of `packages` in the peer's venv, as its own Python reports them ("not installed" if absent)."""
    script = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n        out[name] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(env.python), "-c", script, *packages], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return {name: "unknown" for name in packages}
    versions: dict[str, str] = orjson.loads(done.stdout)
    return versions

"""Settings for the server and the client, from `FNSERVE_*` environment variables and CLI flags.

This is the only module that reads `os.environ`; everything else receives a `Settings`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnserve._units import parse_memory
from fnserve.archive import MAX_FILES, MAX_UNPACKED_BYTES
from fnserve.auth import in_process_key, read_owner_key

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def default_home() -> Path:
    return Path(os.environ.get("FNSERVE_HOME") or Path.home() / ".fnserve").expanduser()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class Timeouts:
    """Every deadline the server keeps, in one place."""

    replica_connect_s: float = 60.0
    replica_init_s: float | None = 600.0
    health_interval_s: float = 5.0
    health_timeout_s: float = 10.0  # for a replica to answer a ping, and again for its `check_health()` to return
    restart_backoff_s: float = 0.5  # before the second restart in a row; doubles each time (the first is at once)
    max_restart_backoff_s: float = 10.0
    replica_stable_s: float = 30.0  # a replica that dies after this long READY starts a fresh count of failures
    graceful_shutdown_s: float = 10.0
    invocation_s: float | None = 300.0
    memory_interval_s: float = 0.5  # how often replicas with a memory limit are measured


@dataclass(frozen=True)
class Settings:
    """How one `fnserve server` runs."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    home: Path = field(default_factory=default_home)
    db_url: str | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    max_asset_bytes: int = 2 * 1024**3  # one uploaded asset
    inline_result_bytes: int = 5 * 1024 * 1024  # a larger result is stored as an asset and answered with a 302
    # An asset created and not uploaded within this long is deleted (an uploaded one is kept until deleted).
    asset_upload_deadline_s: float = 3600.0
    # What one deployed project may unpack to under `home/code`: bytes and entries (fnserve.archive also refuses an
    # entry that expands more than 200 times, a zip bomb).
    max_code_unpacked_bytes: int = MAX_UNPACKED_BYTES
    max_code_files: int = MAX_FILES
    replica_threads: int = 8
    health_failures: int = 3  # failed `check_health()` calls in a row that get a replica replaced
    # Replicas in a row that fail to start, or die within `Timeouts.replica_stable_s` of being ready, before the
    # deployment goes to ERROR instead of restarting them again.
    max_replica_failures: int = 5
    # Workers started ahead of need while some deployment autoscales, so a replica started at request time skips
    # most of its start (backends/warm_pool.py). `FNSERVE_WARM_WORKERS=0` turns them off.
    warm_workers: int = 1
    fake_gpus: str | None = None  # "A100:2,T4": pretend this host has these GPUs (tests, CPU-only machines)
    # Dev mode accepts pickled code and arguments from clients (`fs.deploy(obj)` from a notebook). None: on when
    # the server listens on loopback only, off otherwise; True is refused unless it does.
    dev: bool | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    # What replicas may reserve (backends/inventory.py). None: what the host has, with CPUs as shares that may be
    # oversubscribed; a CPU total makes CPUs strict. `FNSERVE_CPUS=4`, `FNSERVE_MEMORY=8GB`.
    cpus: float | None = None
    memory_bytes: int | None = None
    # Where services' environments are built (envs/builder.py); None: `home / "envs"`. Servers (and test runs) that
    # share one folder share their builds.
    envs_dir: Path | None = None

    @property
    def environments_dir(self) -> Path:
        return self.envs_dir if self.envs_dir is not None else self.home / "envs"

    @property
    def dev_mode(self) -> bool:
        return is_loopback(self.host) if self.dev is None else self.dev

    def check(self) -> None:
        """Raise ValueError for settings that must not run together."""
        if self.dev and not is_loopback(self.host):
            raise ValueError(
                f"dev mode runs pickled code sent by clients, so it is only allowed on loopback; the server would "
                f"listen on {self.host}. Drop --dev, or bind --host 127.0.0.1"
            )

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then `FNSERVE_*` variables, then explicit overrides (CLI flags); None means not given."""
        values: dict[str, Any] = {}
        env = os.environ
        if "FNSERVE_HOST" in env:
            values["host"] = env["FNSERVE_HOST"]
        if "FNSERVE_PORT" in env:
            values["port"] = int(env["FNSERVE_PORT"])
        if "FNSERVE_DB" in env:
            values["db_url"] = env["FNSERVE_DB"]
        if "FNSERVE_FAKE_GPUS" in env:
            values["fake_gpus"] = env["FNSERVE_FAKE_GPUS"]
        if "FNSERVE_CPUS" in env:
            values["cpus"] = float(env["FNSERVE_CPUS"])
        if "FNSERVE_MEMORY" in env:
            values["memory_bytes"] = parse_memory(env["FNSERVE_MEMORY"], field="FNSERVE_MEMORY")
        if "FNSERVE_WARM_WORKERS" in env:
            values["warm_workers"] = int(env["FNSERVE_WARM_WORKERS"])
        if "FNSERVE_DEV" in env:
            values["dev"] = env["FNSERVE_DEV"].lower() in ("1", "true", "yes", "on")
        if "FNSERVE_MAX_BODY_BYTES" in env:
            values["max_body_bytes"] = int(env["FNSERVE_MAX_BODY_BYTES"])
        if "FNSERVE_MAX_ASSET_BYTES" in env:
            values["max_asset_bytes"] = int(env["FNSERVE_MAX_ASSET_BYTES"])
        if "FNSERVE_MAX_INLINE_RESULT_BYTES" in env:
            values["inline_result_bytes"] = int(env["FNSERVE_MAX_INLINE_RESULT_BYTES"])
        if "FNSERVE_ASSET_UPLOAD_DEADLINE_S" in env:
            values["asset_upload_deadline_s"] = float(env["FNSERVE_ASSET_UPLOAD_DEADLINE_S"])
        if "FNSERVE_MAX_CODE_UNPACKED_BYTES" in env:
            values["max_code_unpacked_bytes"] = int(env["FNSERVE_MAX_CODE_UNPACKED_BYTES"])
        if "FNSERVE_MAX_CODE_FILES" in env:
            values["max_code_files"] = int(env["FNSERVE_MAX_CODE_FILES"])
        if env.get("FNSERVE_ENVS_DIR"):
            values["envs_dir"] = Path(env["FNSERVE_ENVS_DIR"]).expanduser()
        values.update({key: value for key, value in overrides.items() if value is not None})
        if "home" in values:
            values["home"] = Path(values["home"]).expanduser()
        return cls(**values)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'fnserve.db'}"


@dataclass(frozen=True)
class ClientSettings:
    """Where the CLI and the Python client find the server."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    home: Path = field(default_factory=default_home)

    @classmethod
    def from_env(cls, url: str | None = None, api_key: str | None = None) -> ClientSettings:
        """The owner key: given, else `FNSERVE_API_KEY`, else that of a server this process runs at `url`, else
        the key file of a server on this machine (`$FNSERVE_HOME/owner.key`)."""
        url = (url or os.environ.get("FNSERVE_URL") or DEFAULT_URL).rstrip("/")
        home = default_home()
        key = api_key or os.environ.get("FNSERVE_API_KEY") or in_process_key(url) or read_owner_key(home)
        return cls(url=url, api_key=key, home=home)

"""Settings for the server and the client, from `FNSERVE_*` environment variables and CLI flags.

This is the only module that reads `os.environ`; everything else receives a `Settings`.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from dataclasses import dataclass, field, replace
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
    # A call or job beyond an autoscaled replica's target waits at most this long for the replicas a scale-up
    # brings, then takes any free slot (controlplane/spread.py).
    scale_up_wait_s: float = 10.0
    memory_interval_s: float = 0.5  # how often replicas with a memory limit are measured
    # A slow client is cut off with 408 (gateway/limits.py): a request's head must arrive whole within `header_read_s`
    # of its first byte (or of the connection's opening), and a body must bring 1 KiB or its end every `body_idle_s`.
    # A client that reads nothing of its response for `write_idle_s` (the socket's buffer stays full) is dropped.
    header_read_s: float | None = 10.0
    body_idle_s: float | None = 30.0
    write_idle_s: float | None = 60.0


# Read from `FNSERVE_<NAME>` (`FNSERVE_MAX_HEADERS=200`).
_HTTP_LIMITS = (
    "max_artifact_bytes",
    "max_request_line_bytes",
    "max_header_line_bytes",
    "max_headers",
    "max_head_bytes",
)
# `FNSERVE_HEADER_READ_TIMEOUT_S=5`; `none` for no limit.
_SLOW_CLIENT_TIMEOUTS = {
    "header_read_s": "FNSERVE_HEADER_READ_TIMEOUT_S",
    "body_idle_s": "FNSERVE_BODY_IDLE_TIMEOUT_S",
    "write_idle_s": "FNSERVE_WRITE_IDLE_TIMEOUT_S",
}


@dataclass(frozen=True)
class Settings:
    """How one `fnserve server` runs."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    home: Path = field(default_factory=default_home)
    db_url: str | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    max_asset_bytes: int = 2 * 1024**3  # one uploaded asset
    max_artifact_bytes: int = 512 * 1024**2  # one uploaded code archive or pickle
    # Request heads, refused as their bytes arrive, before any authentication (gateway/limits.py; nginx's sizes): a
    # request line over `max_request_line_bytes` with 414, a header line over `max_header_line_bytes`, more than
    # `max_headers` headers or a head over `max_head_bytes` in all with 431.
    max_request_line_bytes: int = 8 * 1024
    max_header_line_bytes: int = 8 * 1024
    max_headers: int = 100
    max_head_bytes: int = 32 * 1024
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
        for name in _HTTP_LIMITS:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in _SLOW_CLIENT_TIMEOUTS:
            if (value := getattr(self.timeouts, name)) is not None and value <= 0:
                raise ValueError(f"Timeouts.{name} must be > 0, got {value}; use None for no limit")
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
        for name in _HTTP_LIMITS:
            if (variable := f"FNSERVE_{name.upper()}") in env:
                values[name] = int(env[variable])
        slow_clients: dict[str, Any] = {
            name: None if env[variable].lower() in ("", "none") else float(env[variable])
            for name, variable in _SLOW_CLIENT_TIMEOUTS.items()
            if variable in env
        }
        if slow_clients:
            values["timeouts"] = replace(Timeouts(), **slow_clients)
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
        """The server: `url`, else `FNSERVE_URL`, else the default (a bare `host:port` means `http://host:port`). The
        owner key: given, else `FNSERVE_API_KEY`, else that of a server this process runs at `url`, else the key file
        of a server on this machine (`$FNSERVE_HOME/owner.key`). ValueError for a URL that names no server."""
        if url:
            url = server_url(url, source="the server URL")
        elif os.environ.get("FNSERVE_URL"):
            url = server_url(os.environ["FNSERVE_URL"], source="FNSERVE_URL")
        else:
            url = DEFAULT_URL
        home = default_home()
        key = api_key or os.environ.get("FNSERVE_API_KEY") or in_process_key(url) or read_owner_key(home)
        return cls(url=url, api_key=key, home=home)


def server_url(text: str, *, source: str) -> str:
    """A server's base URL as the client uses it: `127.0.0.1:8000` gets `http://`, a trailing `/` goes; ValueError
    naming `source` and the fix when it is no HTTP URL of a host."""
    url = text.strip()
    if "://" not in url:
        url = f"http://{url}"
    fix = f"write it as http://HOST:PORT, e.g. {DEFAULT_URL}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{source} {text!r} is not an http:// or https:// URL; {fix}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{source} {text!r} has no valid port (1-65535 after ':'); {fix}") from None
    if not parts.hostname:
        raise ValueError(f"{source} {text!r} names no host; {fix}")
    if port == 0:
        raise ValueError(f"{source} {text!r} has port 0, where no server listens; {fix}")
    return url.rstrip("/")

"""Targets: the servers under test. Each says how to start it, when it is up, and how to put a scenario's service on it.

A target is data plus small functions (its command line, for platforms a deploy step, for peers an install
step), so the bare app and fnserve are entries in `TARGETS` here, and the peers (LitServe, BentoML, Ray Serve,
each from its own venv outside the repo) are built by `peer_targets.py`. `launch` starts any target, times it
from process start to its first good answer, and always stops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from benchmarks.probes import Probe, Reply, request, send
from benchmarks.procs import Memory, memory_of, process_tree, start_process, stop_process_tree, wait_until
from benchmarks.scenarios import BENCHMARK_OWNER_KEY, NOOP, Scenario

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
VENV_BIN = Path(sys.executable).parent  # the venv running the harness: `.venv/bin/python benchmarks/run.py`


class TargetError(RuntimeError):
    """A target did not start, deploy or answer as it should; the message names it and its log file."""


@dataclass(frozen=True)
class DeployTiming:
    """How long a deploy took, from the moment the deploy command started.

    Attributes:
        first_response_s: Until the first 200 from the scenario's request (polled every 5 ms).
        command_s: Until the deploy command exited.
        polls: Requests the poller sent before the first 200.
    """

    first_response_s: float
    command_s: float
    polls: int


def _inherit_env(home: Path) -> dict[str, str]:
    return dict(os.environ)


def _always_available() -> str | None:
    return None


@dataclass(frozen=True, kw_only=True)
class Target:
    """One server under test.

    Attributes:
        name: Short label for tables and `--targets` (`bare`, `fnserve-r1`).
        description: One line for RESULTS.md.
        command: `(port, home) -> argv` that starts the server in the foreground; `home` is a fresh directory.
        ready: A request that answers 200 once the server is up (any status at all when `ready_any_status`).
        ready_any_status: True when any HTTP answer to `ready` means "up" (a server with no health route).
        env: `home -> environment` for the server and its deploy commands.
        deploy: For platforms, `(running, scenario) -> DeployTiming`: put the scenario's service on the server
            and return once it answers. None for servers that serve the scenarios as soon as they start.
        available: None when the target can run on this machine, else the reason it cannot and the fix.
        baseline: The target the others' ratios are computed against.
        goals_apply: The issue's goals (RESULTS.md "Goals") are checked against this target; false for peers.
        startup_timeout_s: How long `ready` may take to answer.
        peer: Another framework, compared with fnserve: when it fails to install, start or answer, the run
            reports it as failed and goes on without it (a failure of the others stops the run).
        install: For peers, `work_dir -> versions`: build or reuse its venv (the log goes in `work_dir`) and
            return the versions of its packages; raises `PeerInstallError`.
        replicas: For platforms, the replicas each service gets; None for servers that have none.
    """

    name: str
    description: str
    command: Callable[[int, Path], list[str]]
    ready: Probe
    ready_any_status: bool = False
    env: Callable[[Path], dict[str, str]] = _inherit_env
    deploy: Callable[[RunningTarget, Scenario], DeployTiming] | None = None
    available: Callable[[], str | None] = _always_available
    baseline: bool = False
    goals_apply: bool = False
    startup_timeout_s: float = 60.0
    peer: bool = False
    install: Callable[[Path], dict[str, str]] | None = None
    replicas: int | None = None


@dataclass
class RunningTarget:
    """A started target: where it listens, its process, its log, what was deployed on it, and `started_s`, the
    seconds from starting its process to the first good answer to its `ready` request."""

    target: Target
    port: int
    home: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    deploys: dict[str, DeployTiming] = field(default_factory=dict)
    started_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory(self) -> Memory:
        """RSS/PSS of the server and every process it started (replicas included)."""
        return memory_of(proc.pid for proc in process_tree(self.process.pid))

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def check_alive(self, doing: str) -> None:
        """Raise `TargetError` (with the log's tail) when the server process has exited."""
        code = self.process.poll()
        if code is not None:
            raise TargetError(
                f"Target {self.target.name!r} exited with code {code} while {doing}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )


@contextmanager
def launch(target: Target, *, port: int, work_dir: Path) -> Iterator[RunningTarget]:
    """Start `target` on `port`, wait until it answers, yield it, and stop its whole process tree on the way out.

    `ready` is polled every 10 ms, so `started_s` (process start to its first good answer) is that precise.
    """
    home = work_dir / target.name
    home.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"{target.name}.log"
    argv, env = target.command(port, home), target.env(home)
    started_at = time.perf_counter()
    process = start_process(argv, log_path=log_path, env=env, cwd=REPO_ROOT)
    running = RunningTarget(target=target, port=port, home=home, log_path=log_path, process=process)
    try:
        last: list[Reply | None] = [None]

        def is_up() -> bool | None:
            running.check_alive(f"starting (waiting for {target.ready.method} {target.ready.path})")
            last[0] = reply = send(running.url, target.ready, timeout_s=1.0)
            return True if reply is not None and (target.ready_any_status or reply.status == 200) else None

        wait_until(
            is_up,
            timeout_s=target.startup_timeout_s,
            what=f"target {target.name!r} to answer {target.ready.method} {running.url}{target.ready.path}",
            describe=lambda: f"last answer: {_describe(last[0])}; log {log_path}:\n{running.log_tail()}",
            interval_s=0.01,
        )
        running.started_s = time.perf_counter() - started_at
        yield running
    finally:
        stop_process_tree(process)


def _describe(reply: Reply | None) -> str:
    return "no connection" if reply is None else f"{reply.status} {reply.body[:200]!r}"


# --- the bare app ---------------------------------------------------------------------------------------------

# Servers that serve the scenarios as soon as they start are up when the no-op answers 200.
NOOP_READY = Probe(method=NOOP.method, path=NOOP.path, body=NOOP.body, headers=NOOP.headers)

BARE = Target(
    name="bare",
    description="uvicorn + uvloop + httptools + Starlette, one route per scenario, no platform (`bare_app.py`)",
    command=lambda port, home: [sys.executable, str(BENCHMARKS_DIR / "bare_app.py"), "--port", str(port)],
    ready=NOOP_READY,
    baseline=True,
    startup_timeout_s=30.0,
)


# --- fnserve ---------------------------------------------------------------------------------------------------

FNSERVE_BIN = VENV_BIN / "fnserve"
DEPLOY_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.005


def _fnserve_env(home: Path) -> dict[str, str]:
    """The environment of a benchmark server and its CLI calls, with the owner key the scenarios send saved in its
    home first (the server takes a key it finds there), so auth runs on every measured request."""
    # The user's own FNSERVE_* settings (URL, API key) must not leak into a benchmark server or its CLI calls.
    env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
    env["FNSERVE_HOME"] = str(home)
    key_file = home / "owner.key"
    if not key_file.exists():
        key_file.write_text(BENCHMARK_OWNER_KEY + "\n")
        key_file.chmod(0o600)
    return env


def _fnserve_available() -> str | None:
    if not FNSERVE_BIN.exists():
        return f"{FNSERVE_BIN} does not exist; install fnserve into this venv with `{VENV_BIN / 'pip'} install -e .`"
    try:
        done = subprocess.run([str(FNSERVE_BIN), "server", "--help"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return f"`{FNSERVE_BIN} server --help` did not finish in 30 s"
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()[-5:]
        return f"`{FNSERVE_BIN} server --help` failed with code {done.returncode}: " + " | ".join(output)
    return None


class _FirstResponsePoller(threading.Thread):
    """Sends the scenario's request every `POLL_INTERVAL_S` until one answers 200; records when (perf_counter)."""

    def __init__(self, url: str, scenario: Scenario, *, timeout_s: float) -> None:
        super().__init__(name=f"poll {url}{scenario.path}", daemon=True)
        self.url, self.scenario, self.timeout_s = url, scenario, timeout_s
        self.first_ok_at: float | None = None
        self.polls = 0
        self.last: Reply | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        deadline = time.perf_counter() + self.timeout_s
        next_at = time.perf_counter()
        while not self.stopped.is_set() and time.perf_counter() < deadline:
            self.polls += 1
            s = self.scenario
            self.last = request(self.url, s.method, s.path, body=s.body, headers=s.headers, timeout_s=1.0)
            if self.last is not None and self.last.status == 200:
                self.first_ok_at = time.perf_counter()
                return
            next_at += POLL_INTERVAL_S
            self.stopped.wait(max(0.0, next_at - time.perf_counter()))


def owner_headers(home: Path) -> dict[str, str]:
    """The owner's `Authorization` header for fnserve's control plane, from the key file the server made in `home`."""
    for name in ("api_key", "owner_key", "api-key", "owner.key", "api_key.txt"):
        key_file = home / name
        if key_file.is_file():
            return {"Authorization": f"Bearer {key_file.read_text().strip()}"}
    return {}


def service_state(running: RunningTarget, service_name: str) -> str | None:
    """`state` from `GET /v1/services/<name>`, or None when the server did not answer 200 with it."""
    reply = request(running.url, "GET", f"/v1/services/{service_name}", headers=owner_headers(running.home))
    if reply is None or reply.status != 200:
        return None
    state = orjson.loads(reply.body).get("state")
    return state if isinstance(state, str) else None


def _fnserve_deploy(replicas: int) -> Callable[[RunningTarget, Scenario], DeployTiming]:
    def deploy(running: RunningTarget, scenario: Scenario) -> DeployTiming:
        name = running.target.name
        argv = [str(FNSERVE_BIN), "deploy", scenario.service_entrypoint, "--url", running.url]
        argv += ["--replicas", str(replicas)]
        log_path = running.log_path.with_name(f"{name}-deploy-{scenario.name}.log")
        poller = _FirstResponsePoller(running.url, scenario, timeout_s=DEPLOY_TIMEOUT_S)
        poller.start()
        try:
            started_at = time.perf_counter()
            process = start_process(argv, log_path=log_path, env=_fnserve_env(running.home), cwd=REPO_ROOT)
            try:
                code = process.wait(timeout=DEPLOY_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise TargetError(
                    f"`{' '.join(argv)}` did not finish within {DEPLOY_TIMEOUT_S:g} s; log {log_path}, "
                    f"server log {running.log_path}"
                ) from None
            finally:
                stop_process_tree(process)
            command_s = time.perf_counter() - started_at
            if code != 0:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise TargetError(f"`{' '.join(argv)}` failed with code {code}; log {log_path}:\n{tail}")
            poller.join(timeout=max(0.0, DEPLOY_TIMEOUT_S - command_s))
        finally:
            poller.stopped.set()
            poller.join(timeout=5)
        if poller.first_ok_at is None:
            raise TargetError(
                f"Service {scenario.service_name!r} on {name} did not answer {scenario.method} {scenario.path} "
                f"with 200 within {DEPLOY_TIMEOUT_S:g} s of `fnserve deploy` (last answer: {_describe(poller.last)}); "
                f"server log {running.log_path}"
            )
        states: list[str | None] = [None]

        def is_active() -> bool | None:
            running.check_alive(f"deploying {scenario.service_name!r}")
            states[0] = service_state(running, scenario.service_name)
            return True if states[0] == "ACTIVE" else None

        wait_until(
            is_active,
            timeout_s=30,
            what=f"GET {running.url}/v1/services/{scenario.service_name} to say ACTIVE",
            describe=lambda: f"last state: {states[0]}; server log {running.log_path}",
        )
        return DeployTiming(first_response_s=poller.first_ok_at - started_at, command_s=command_s, polls=poller.polls)

    return deploy


def fnserve_target(replicas: int) -> Target:
    """`fnserve server` with each scenario's service deployed at `replicas` replicas."""
    return Target(
        name=f"fnserve-r{replicas}",
        description=f"`fnserve server`, the service deployed with `--replicas {replicas}` (gateway → replica)",
        command=lambda port, home: [
            str(FNSERVE_BIN),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--home",
            str(home),
        ],
        ready=Probe(method="GET", path="/-/healthz"),
        env=_fnserve_env,
        deploy=_fnserve_deploy(replicas),
        available=_fnserve_available,
        goals_apply=True,
        replicas=replicas,
    )


TARGETS: dict[str, Target] = {target.name: target for target in (BARE, fnserve_target(1), fnserve_target(2))}

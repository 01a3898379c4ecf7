"""The cold-start benchmark: upload → ACTIVE → first 200 for a hello service, a call that scales a service up from
zero replicas, and where a replica's start goes (the worker's import time).

    .venv/bin/python benchmarks/cold_start.py            # 5 deploys, 5 calls from zero; rewrites COLD_START_RESULTS.md
    .venv/bin/python benchmarks/cold_start.py --smoke    # one of each; prints only
    .venv/bin/python benchmarks/cold_start.py --rounds 10 --output /tmp/cold.md

One `fnserve server` (fresh home, SQLite) gets `benchmarks/apps/hello.py` deployed `--rounds` times, each time new
code under a new name, then `benchmarks/apps/hello_zero.py` (`min_replicas=0`), called `--rounds` times after it
stopped its replica. Needs fnserve installed in this venv, not wrk; logs stay in the work directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as `python benchmarks/cold_start.py`: import `benchmarks` from the repo root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.environment import results_header
from benchmarks.jobs import percentile
from benchmarks.probes import request
from benchmarks.procs import WaitTimeout, free_port, wait_until
from benchmarks.report import Environment, describe_environment, machine_table, markdown_table, write_results
from benchmarks.scenarios import AUTHORIZATION, BENCHMARK_OWNER_KEY, Scenario
from benchmarks.targets import (
    BENCHMARKS_DIR,
    DEPLOY_TIMEOUT_S,
    POLL_INTERVAL_S,
    RunningTarget,
    TargetError,
    _FirstResponsePoller,
    fnserve_target,
    launch,
)
from fnserve.archive import pack_project
from fnserve.client.api import Client
from fnserve.sdk.loader import load_target
from fnserve.spec import ServiceSpec

DEFAULT_OUTPUT = BENCHMARKS_DIR / "COLD_START_RESULTS.md"
NOTES_MARKER = (
    "<!-- notes: everything below this line is written by hand; cold_start.py keeps it when it rewrites this file -->"
)
HELLO_APP = BENCHMARKS_DIR / "apps" / "hello.py"
HELLO_ZERO_APP = BENCHMARKS_DIR / "apps" / "hello_zero.py"
HEADERS = {"Content-Type": "application/json", **AUTHORIZATION}
GOAL_ACTIVE_MS = 1000.0  # upload → ACTIVE, p50
GOAL_FROM_ZERO_MS = 500.0  # a call to a service scaled to zero → its 200, p50
IDLE_TIMEOUT_S = 30.0  # for a service to stop its replicas


@dataclass(frozen=True, kw_only=True)
class ColdStartOptions:
    rounds: int  # deploys, and calls from zero
    import_runs: int  # runs of each import command
    work_dir: Path


@dataclass(frozen=True, kw_only=True)
class DeployRound:
    """One deploy of the hello service, from `POST /v1/services` (its code already uploaded). Times in ms."""

    service_name: str
    upload_ms: float  # the client's upload of the zipped project: HEAD, then PUT (new code every round)
    active_ms: float  # POST → `GET /v1/services/NAME` says ACTIVE
    first_ok_ms: float  # POST → the first 200 of the endpoint
    cold_start_ms: float  # the replica's own account: process start → READY
    server_cpu_ms: float  # CPU the server process used meanwhile, the 5 ms polls' answers included

    @property
    def rest_ms(self) -> float:
        """→ ACTIVE less the replica's own start."""
        return self.active_ms - self.cold_start_ms


@dataclass(frozen=True, kw_only=True)
class WakeRound:
    """One call to the service while it had no replica, split with the server's timestamps (same clock). In ms."""

    request_ms: float  # the call sent → its 200 received
    spawn_ms: float  # the call sent → the replica's `started_at` (routing, scale-up decision)
    cold_start_ms: float  # `started_at` → `ready_at`: process start, imports, user code, initializer, READY
    answer_ms: float  # `ready_at` → the 200 received: the call dispatched to the new replica and answered

    @property
    def rest_ms(self) -> float:
        """Everything but the replica's own start."""
        return self.request_ms - self.cold_start_ms


@dataclass
class ColdStartResult:
    options: ColdStartOptions
    started_at: datetime
    deploys: list[DeployRound] = dataclasses.field(default_factory=list)
    wakes: list[WakeRound] = dataclasses.field(default_factory=list)  # with a standby worker (the default)
    cold_wakes: list[WakeRound] = dataclasses.field(default_factory=list)  # FNSERVE_WARM_WORKERS=0
    imports: ImportTiming | None = None


# --- measuring -------------------------------------------------------------------------------------------------


def _service(running: RunningTarget, name: str) -> dict[str, Any]:
    reply = request(running.url, "GET", f"/v1/services/{name}", headers=HEADERS)
    if reply is None or reply.status != 200:
        got = "no answer" if reply is None else f"{reply.status} {reply.body[:300]!r}"
        raise TargetError(f"GET /v1/services/{name} answered {got}; server log {running.log_path}")
    info: dict[str, Any] = orjson.loads(reply.body)
    return info


def _post_service(running: RunningTarget, spec: ServiceSpec, code_sha256: str, entrypoint: str) -> None:
    """`POST /v1/services` with the body `fnserve deploy` sends (`fnserve.sdk.deploy.submit`), no initializer args."""
    body: dict[str, Any] = {
        "spec": spec.model_dump(mode="json"),
        "code": {"kind": "archive", "sha256": code_sha256, "entrypoint": entrypoint},
        "init_sha256": None,
        "init_shown": {"args": [], "kwargs": {}},
        "keep_old": False,
    }
    reply = request(running.url, "POST", "/v1/services", body=orjson.dumps(body), headers=HEADERS, timeout_s=30)
    if reply is None or reply.status not in (200, 201):
        got = "no answer" if reply is None else f"{reply.status} {reply.body[:300]!r}"
        raise TargetError(f"POST /v1/services for {spec.name!r} answered {got}; server log {running.log_path}")


def _wait_active(running: RunningTarget, name: str) -> dict[str, Any]:
    """Poll `GET /v1/services/NAME` every `POLL_INTERVAL_S` until ACTIVE; its info then. `TargetError` on ERROR."""
    last: list[dict[str, Any] | None] = [None]

    def active() -> dict[str, Any] | None:
        running.check_alive(f"deploying {name!r}")
        last[0] = info = _service(running, name)
        if info["state"] == "ERROR":
            raise TargetError(f"Service {name!r} went to ERROR: {info.get('reason')}; logs in {running.home}")
        return info if info["state"] == "ACTIVE" else None

    return wait_until(
        active,
        timeout_s=DEPLOY_TIMEOUT_S,
        what=f"service {name!r} to be ACTIVE",
        interval_s=POLL_INTERVAL_S,
        describe=lambda: f"last state: {last[0] and last[0]['state']}; server log {running.log_path}",
    )


def _wait_no_replicas(running: RunningTarget, name: str) -> None:
    last: list[Any] = [None]

    def idle() -> bool | None:
        running.check_alive(f"waiting for {name!r} to stop its replicas")
        last[0] = replicas = _service(running, name)["replicas"]
        return True if not replicas else None

    wait_until(
        idle,
        timeout_s=IDLE_TIMEOUT_S,
        what=f"service {name!r} to have 0 replicas",
        interval_s=0.02,
        describe=lambda: f"last replicas: {last[0]}",
    )


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc/<pid>/stat; 0 when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _round_project(work_dir: Path, app: Path, round_number: int) -> Path:
    """A project folder holding the app file alone, with a comment naming the round: new code, a new digest."""
    folder = work_dir / f"code-{round_number}"
    folder.mkdir(parents=True, exist_ok=True)
    text = app.read_text() + f"\n# cold-start round {round_number}: new code, so the server stores and unpacks it\n"
    (folder / app.name).write_text(text)
    return folder


def _ready_replica(info: dict[str, Any], seen: set[str]) -> dict[str, Any]:
    fresh: list[dict[str, Any]] = [
        replica for replica in info["replicas"] if replica["state"] == "READY" and replica["replica_id"] not in seen
    ]
    if len(fresh) != 1 or fresh[0]["cold_start_ms"] is None:
        raise TargetError(f"Expected one new READY replica of {info['name']!r}, got {info['replicas']}")
    return fresh[0]


def measure_deploy(running: RunningTarget, client: Client, work_dir: Path, round_number: int) -> DeployRound:
    """Upload new code for the hello service, then time `POST /v1/services` → ACTIVE and → the first 200."""
    service, _, entrypoint = load_target(f"{HELLO_APP}:hello")
    name = f"{service.spec.name}-{round_number}"
    spec = service.spec.model_copy(update={"name": name, "route_prefix": f"/{name}"})
    code = pack_project(_round_project(work_dir, HELLO_APP, round_number))
    upload_started = time.perf_counter()
    code_sha256 = client.upload(code)
    upload_ms = (time.perf_counter() - upload_started) * 1000

    call = Scenario(
        name=name,
        description="the hello endpoint",
        method="POST",
        path=f"/{name}/hello",
        body=b"{}",
        headers=HEADERS,
        expected_body=b'"hello"',
        service_entrypoint=f"{HELLO_APP}:hello",
        service_name=name,
    )
    poller = _FirstResponsePoller(running.url, call, timeout_s=DEPLOY_TIMEOUT_S)  # the deploy poller of run.py
    poller.start()  # before the POST: it sees 404s until the route exists, then 503s until a replica is READY
    try:
        server_cpu_before = cpu_ms(running.process.pid)
        started = time.perf_counter()
        _post_service(running, spec, code_sha256, entrypoint)
        info = _wait_active(running, name)
        active_ms = (time.perf_counter() - started) * 1000
        poller.join(timeout=DEPLOY_TIMEOUT_S)
    finally:
        poller.stopped.set()
        poller.join(timeout=5)
    server_cpu_ms = cpu_ms(running.process.pid) - server_cpu_before
    if poller.first_ok_at is None:
        last = poller.last and f"{poller.last.status} {poller.last.body[:200]!r}"
        raise TargetError(f"Service {name!r} is ACTIVE but never answered 200 (last: {last}); log {running.log_path}")
    replica = _ready_replica(info, set())
    request(running.url, "DELETE", f"/v1/services/{name}", headers=HEADERS, timeout_s=30)
    _wait_no_replicas(running, name)  # the next round starts on a machine with no replica stopping
    return DeployRound(
        service_name=name,
        upload_ms=upload_ms,
        active_ms=active_ms,
        first_ok_ms=(poller.first_ok_at - started) * 1000,
        cold_start_ms=float(replica["cold_start_ms"]),
        server_cpu_ms=server_cpu_ms,
    )


def deploy_hello_zero(running: RunningTarget, client: Client) -> str:
    """Deploy the scaled-to-zero service as `fnserve deploy` would (upload, then POST); its name once ACTIVE."""
    service, root, entrypoint = load_target(f"{HELLO_ZERO_APP}:hello_zero")
    _post_service(running, service.spec, client.upload(pack_project(root)), entrypoint)
    _wait_active(running, service.spec.name)
    return service.spec.name


def measure_wake(running: RunningTarget, name: str, seen: set[str]) -> WakeRound:
    """Wait until the service has no replica, then time one call to its 200, split with the new replica's times."""
    _wait_no_replicas(running, name)
    sent_at = time.time()
    started = time.perf_counter()
    reply = request(running.url, "POST", f"/{name}/hello", body=b"{}", headers=HEADERS, timeout_s=DEPLOY_TIMEOUT_S)
    request_ms = (time.perf_counter() - started) * 1000
    received_at = time.time()
    if reply is None or reply.status != 200:
        got = "no answer" if reply is None else f"{reply.status} {reply.body[:300]!r}"
        raise TargetError(f"POST /{name}/hello from zero replicas answered {got}; server log {running.log_path}")
    replica = _ready_replica(_service(running, name), seen)
    seen.add(replica["replica_id"])
    return WakeRound(
        request_ms=request_ms,
        spawn_ms=(replica["started_at"] - sent_at) * 1000,
        cold_start_ms=float(replica["cold_start_ms"]),
        answer_ms=(received_at - replica["ready_at"]) * 1000,
    )


def run_cold_start(options: ColdStartOptions, *, log: Callable[[str], None] = print) -> ColdStartResult:
    """Start a server, time the deploys and the calls from zero, stop it, then time the worker's imports.

    Raises:
        TargetError: The server did not start, deploy or answer (the message names its log).
        WaitTimeout: A bounded wait ran out.
    """
    options.work_dir.mkdir(parents=True, exist_ok=True)
    result = ColdStartResult(options=options, started_at=datetime.now(UTC))
    target = dataclasses.replace(fnserve_target(1), name="fnserve-cold-start")
    # The same server without standby workers, for the calls from zero: the two take turns, round by round.
    unwarmed = dataclasses.replace(
        target, name="fnserve-no-warm-workers", env=lambda home: {**target.env(home), "FNSERVE_WARM_WORKERS": "0"}
    )
    with (
        launch(target, port=free_port(), work_dir=options.work_dir) as running,
        Client(running.url, api_key=BENCHMARK_OWNER_KEY) as client,
        launch(unwarmed, port=free_port(), work_dir=options.work_dir) as running_cold,
        Client(running_cold.url, api_key=BENCHMARK_OWNER_KEY) as client_cold,
    ):
        log(f"Server pid {running.process.pid} on {running.url}, log {running.log_path}")
        for round_number in range(1, options.rounds + 1):
            deploy = measure_deploy(running, client, options.work_dir, round_number)
            result.deploys.append(deploy)
            log(
                f"  deploy {round_number}: upload {deploy.upload_ms:.0f} ms, POST → ACTIVE {deploy.active_ms:.0f} ms, "
                f"→ first 200 {deploy.first_ok_ms:.0f} ms, replica cold start {deploy.cold_start_ms:.0f} ms"
            )
        name = deploy_hello_zero(running, client)
        deploy_hello_zero(running_cold, client_cold)
        seen: set[str] = set()
        for round_number in range(1, options.rounds + 1):
            for server, wakes, how in ((running, result.wakes, "standby"), (running_cold, result.cold_wakes, "new")):
                wake = measure_wake(server, name, seen)
                wakes.append(wake)
                log(
                    f"  from zero {round_number} ({how} worker): call → 200 {wake.request_ms:.0f} ms = to spawn "
                    f"{wake.spawn_ms:.0f} + replica cold start {wake.cold_start_ms:.0f} + READY → 200 "
                    f"{wake.answer_ms:.0f}"
                )
    result.imports = measure_imports(runs=options.import_runs, cwd=options.work_dir)
    log(f"  import fnserve.runtime.worker: p50 {result.imports.import_p50_ms:.0f} ms over interpreter start")
    return result


# --- the worker's imports --------------------------------------------------------------------------------------

WORKER_MODULE = "fnserve.runtime.worker"  # what a replica runs: `python -m fnserve.runtime.worker`


@dataclass(frozen=True)
class ImportedModule:
    """One line of `python -X importtime`: a module, its depth in the import tree, and its times."""

    name: str
    level: int  # 0: imported by the command itself; children are printed before their parent
    self_us: int
    cumulative_us: int


@dataclass(frozen=True, kw_only=True)
class ImportTiming:
    interpreter_ms: list[float]  # wall time of `python -c pass`
    interpreter_cpu_ms: list[float]  # its CPU time (user + system)
    worker_ms: list[float]  # wall time of `python -c "import fnserve.runtime.worker"`
    worker_cpu_ms: list[float]
    modules: list[ImportedModule]  # the fastest of as many `-X importtime` runs of the same import

    @property
    def import_p50_ms(self) -> float:
        """The import alone: the p50 of the worker import's wall time less the interpreter's."""
        return percentile(self.worker_ms, 0.5) - percentile(self.interpreter_ms, 0.5)


def parse_importtime(text: str) -> list[ImportedModule]:
    """The modules of `-X importtime`'s stderr (`import time: <self us> | <cumulative us> | <indented name>`)."""
    modules = []
    for line in text.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header, or anything else on stderr
        name = fields[2].removeprefix(" ")
        stripped = name.lstrip(" ")
        level = (len(name) - len(stripped)) // 2
        modules.append(ImportedModule(stripped, level, int(fields[0]), int(fields[1])))
    return modules


def imported_by(modules: list[ImportedModule], parent: str) -> list[ImportedModule]:
    """What `parent` imported itself (one level down), from the first time it was imported."""
    index = next((i for i, module in enumerate(modules) if module.name == parent), None)
    if index is None:
        return []
    level, children = modules[index].level, []
    for module in reversed(modules[:index]):
        if module.level <= level:
            break
        if module.level == level + 1:
            children.append(module)
    return children


def _children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _run(argv: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run `argv` to its end: its wall time and CPU time in ms, and its stderr."""
    cpu_before, started = _children_cpu_ms(), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)
    wall_ms, cpu = (time.perf_counter() - started) * 1000, _children_cpu_ms() - cpu_before
    if done.returncode != 0:
        raise TargetError(f"`{shlex.join(argv)}` failed with code {done.returncode}: {done.stderr[-500:]!r}")
    return wall_ms, cpu, done.stderr


def measure_imports(*, runs: int, cwd: Path) -> ImportTiming:
    """Time the interpreter alone and the worker's import in turn, `runs` times each, then break the import down."""
    interpreter, worker = [], []
    for _ in range(runs):  # in turn, so a busy moment of the machine hits both alike
        interpreter.append(_run([sys.executable, "-c", "pass"], cwd)[:2])
        worker.append(_run([sys.executable, "-c", f"import {WORKER_MODULE}"], cwd)[:2])
    # The breakdown comes from the least disturbed of `runs` runs: the one whose modules took the least in all.
    argv = [sys.executable, "-X", "importtime", "-c", f"import {WORKER_MODULE}"]
    breakdowns = [parse_importtime(_run(argv, cwd)[2]) for _ in range(runs)]
    modules = min(breakdowns, key=lambda found: sum(module.self_us for module in found))
    return ImportTiming(
        interpreter_ms=[wall for wall, _ in interpreter],
        interpreter_cpu_ms=[cpu for _, cpu in interpreter],
        worker_ms=[wall for wall, _ in worker],
        worker_cpu_ms=[cpu for _, cpu in worker],
        modules=modules,
    )


def _ms(us: int) -> str:
    return f"{us / 1000:,.1f}"


def import_tables(timing: ImportTiming, *, top: int = 10) -> str:
    walls = [
        ["`python -c pass` (interpreter start and exit): wall", *spread(timing.interpreter_ms)],
        ["... CPU (user + system)", *spread(timing.interpreter_cpu_ms)],
        [f'`python -c "import {WORKER_MODULE}"`: wall', *spread(timing.worker_ms)],
        ["... CPU (user + system)", *spread(timing.worker_cpu_ms)],
    ]
    wall = markdown_table([f"subprocess (ms, n = {len(timing.worker_ms)} each)", "min", "p50", "max"], walls)
    total_us = sum(module.self_us for module in timing.modules)
    by_self = sorted(timing.modules, key=lambda module: module.self_us, reverse=True)[:top]
    packages: dict[str, int] = {}
    for module in timing.modules:
        top_level = module.name.split(".")[0]
        packages[top_level] = packages.get(top_level, 0) + module.self_us
    by_package = sorted(packages.items(), key=lambda item: item[1], reverse=True)[:top]
    fnserve_imports = sorted(imported_by(timing.modules, "fnserve"), key=lambda m: m.cumulative_us, reverse=True)
    return "\n\n".join(
        [
            wall,
            f"The import alone (p50 difference): **{timing.import_p50_ms:,.0f} ms**. The fastest of "
            f"{len(timing.worker_ms)} runs under `-X importtime` (which slows it): {len(timing.modules)} modules, "
            f"{_ms(total_us)} ms in all.",
            f"Top {top} modules by own (self) time:\n\n"
            + markdown_table(
                ["module", "self (ms)", "cumulative (ms)"],
                [[f"`{m.name}`", _ms(m.self_us), _ms(m.cumulative_us)] for m in by_self],
            ),
            f"Top {top} packages by the self time of all their modules:\n\n"
            + markdown_table(
                ["package", "self (ms)", "share"],
                [[f"`{name}`", _ms(us), f"{us / total_us:.0%}" if total_us else "–"] for name, us in by_package],
            ),
            "What `fnserve/__init__.py` imports (every replica and every user module runs it), by cumulative time:\n\n"
            + markdown_table(
                ["module", "cumulative (ms)"],
                [[f"`{m.name}`", _ms(m.cumulative_us)] for m in fnserve_imports[:top]],
            ),
        ]
    )


# --- Markdown --------------------------------------------------------------------------------------------------


def spread(values: list[float]) -> list[str]:
    """min, p50 and max as table cells, in ms."""
    return [f"{min(values):,.1f}", f"{percentile(values, 0.5):,.1f}", f"{max(values):,.1f}"] if values else ["–"] * 3


def deploy_table(deploys: list[DeployRound]) -> str:
    rows = [
        ["upload of the zipped project (HEAD + PUT)", *spread([d.upload_ms for d in deploys])],
        ["**POST /v1/services → ACTIVE**", *spread([d.active_ms for d in deploys])],
        ["**POST /v1/services → first 200**", *spread([d.first_ok_ms for d in deploys])],
        ["of which the replica's `cold_start_ms` (process start → READY)", *spread([d.cold_start_ms for d in deploys])],
        ["→ ACTIVE minus `cold_start_ms` (POST, unpack, mark ACTIVE, poll)", *spread([d.rest_ms for d in deploys])],
        ["server CPU time meanwhile (the polls' answers included)", *spread([d.server_cpu_ms for d in deploys])],
    ]
    summary = markdown_table([f"deploys (ms, n = {len(deploys)})", "min", "p50", "max"], rows)
    per_round = [
        [d.service_name]
        + [f"{value:.1f}" for value in (d.upload_ms, d.active_ms, d.first_ok_ms, d.cold_start_ms, d.server_cpu_ms)]
        for d in deploys
    ]
    headers = ["service", "upload", "→ ACTIVE", "→ first 200", "`cold_start_ms`", "server CPU"]
    return summary + "\n\nEach deploy (ms):\n\n" + markdown_table(headers, per_round)


def wake_table(wakes: list[WakeRound]) -> str:
    rows = [
        ["**call → 200**", *spread([w.request_ms for w in wakes])],
        ["call sent → replica process started (routing, scale-up)", *spread([w.spawn_ms for w in wakes])],
        ["replica `cold_start_ms` (process start → READY)", *spread([w.cold_start_ms for w in wakes])],
        ["READY → 200 received (dispatch, the call, the answer)", *spread([w.answer_ms for w in wakes])],
        ["call → 200 minus `cold_start_ms` (everything but the replica's start)", *spread([w.rest_ms for w in wakes])],
    ]
    return markdown_table([f"calls from zero (ms, n = {len(wakes)})", "min", "p50", "max"], rows)


def goals_table(result: ColdStartResult) -> str:
    def row(goal: str, values: list[float], limit_ms: float) -> list[str]:
        if not values:
            return [goal, "not measured", "–"]
        p50, worst = percentile(values, 0.5), max(values)
        verdict = "**pass**" if p50 < limit_ms else "**FAIL**"
        return [goal, f"p50 {p50:,.0f} ms (max {worst:,.0f})", verdict + ("" if worst < limit_ms else ", max over")]

    rows = [
        row(
            "hello service ACTIVE < 1 s after its code is uploaded",
            [d.active_ms for d in result.deploys],
            GOAL_ACTIVE_MS,
        ),
        row("scale-from-zero call answered < 500 ms", [w.request_ms for w in result.wakes], GOAL_FROM_ZERO_MS),
    ]
    return markdown_table(["goal (checked on the p50)", "measured", "result"], rows)


def _speedup(result: ColdStartResult) -> str:
    if not result.wakes or not result.cold_wakes:
        return ""
    warm = percentile([w.request_ms for w in result.wakes], 0.5)
    cold = percentile([w.request_ms for w in result.cold_wakes], 0.5)
    return f"\n\nA call from zero with a standby worker takes **{warm / cold:.2f}×** the time without one (p50s)."


def summary_markdown(result: ColdStartResult) -> str:
    sections = [
        "## Upload → ACTIVE → first 200\n\n" + deploy_table(result.deploys),
        "## Scale from zero\n\nWith a standby worker (the default while a deployment autoscales):\n\n"
        + wake_table(result.wakes)
        + "\n\nWithout (`FNSERVE_WARM_WORKERS=0`: a new interpreter per replica), on a second server, taking turns "
        + "round by round with the first:\n\n"
        + wake_table(result.cold_wakes)
        + _speedup(result),
    ]
    if result.imports is not None:
        sections.append("## Replica start: the worker's imports\n\n" + import_tables(result.imports))
    sections.append("## Goals\n\n" + goals_table(result))
    return "\n\n".join(sections)


def results_markdown(result: ColdStartResult, environment: Environment, *, command: str) -> str:
    """The generated part of COLD_START_RESULTS.md (everything above `NOTES_MARKER`)."""
    environment = dataclasses.replace(environment, wrk="not used")
    poll_ms = POLL_INTERVAL_S * 1000
    header = results_header(
        "Cold-start benchmark results",
        result.started_at,
        environment,
        command=command,
        script="benchmarks/cold_start.py",
    )
    return f"""{header}

## How it was measured

- One `fnserve server` with a fresh home (SQLite state store), on the same machine as the harness; every request
  carries the owner key. Times in ms.
- **Upload → ACTIVE**: {len(result.deploys)} deploys of `benchmarks/apps/{HELLO_APP.name}` (one endpoint returning
  `"hello"`, one replica), each under a new name (`hello-1`, `hello-2`, ...) and with new code (the app file
  alone, plus a comment naming the round), so each deploy stores and unpacks its own archive. The zipped project
  is uploaded first, as `fnserve deploy` does (`Client.upload`: HEAD, then PUT); the clock starts at
  `POST /v1/services` with the body `fnserve deploy` sends. `GET /v1/services/NAME` is polled every {poll_ms:g} ms
  until ACTIVE while another thread sends `POST /NAME/hello` every {poll_ms:g} ms until the first 200 (each on a
  fresh connection, so either figure may be a few ms late). Each service is torn down, and its replica gone,
  before the next deploy.
- **Scale from zero**: `benchmarks/apps/{HELLO_ZERO_APP.name}` (`min_replicas=0`, `max_replicas=1`,
  `downscale_delay_s=0.2`), deployed the same way. Each of {len(result.wakes)} rounds waits until
  `GET /v1/services/hello-zero` lists no replica, then times one `POST /hello-zero/hello` to its 200. The split
  uses the new replica's `started_at` and `ready_at` (the server's wall clock, which is the harness's):
  `cold_start_ms` = `ready_at − started_at`. The same service runs on a second server started with
  `FNSERVE_WARM_WORKERS=0`, and the two take turns round by round: with and without a standby worker.
- **Imports**: `python -c pass` and `python -c "import {WORKER_MODULE}"` run in turn with this venv's interpreter
  (wall and CPU time of each subprocess), then `python -X importtime -c "import {WORKER_MODULE}"` as many times;
  the tables break down the run whose modules took the least. A replica is `python -m {WORKER_MODULE}`, so this
  is where its start goes before the user's code loads.

## Machine and versions

{machine_table(environment)}

{summary_markdown(result)}
"""


# --- command line ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/cold_start.py",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    parser.add_argument("--smoke", action="store_true", help="one deploy, one call from zero, one import run; no file")
    parser.add_argument("--rounds", type=int, help="deploys, and calls from zero (default 5; smoke 1)")
    parser.add_argument("--import-runs", type=int, help="runs of each import command (default 5; smoke 1)")
    parser.add_argument("--output", type=Path, help=f"results file (default {DEFAULT_OUTPUT}; none when --smoke)")
    parser.add_argument("--work-dir", type=Path, help="where logs and the server home go (default: a new temp dir)")
    parser.add_argument("--check-goals", action="store_true", help="exit with 1 when a goal is missed")
    args = parser.parse_args(argv)
    for option in ("rounds", "import_runs"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    return args


def options_from_args(args: argparse.Namespace) -> ColdStartOptions:
    smoke: bool = args.smoke
    return ColdStartOptions(
        rounds=args.rounds or (1 if smoke else 5),
        import_runs=args.import_runs or (1 if smoke else 5),
        work_dir=args.work_dir or Path(tempfile.mkdtemp(prefix="fnserve-bench-cold-")),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = options_from_args(args)
    command = shlex.join(["benchmarks/cold_start.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"Logs and server home: {options.work_dir}")
    try:
        result = run_cold_start(options)
    except (TargetError, WaitTimeout) as exc:
        print(f"\nBenchmark failed: {exc}\nLogs: {options.work_dir}", file=sys.stderr)
        return 1

    print("\n" + summary_markdown(result))
    output: Path | None = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    if output is not None:
        write_results(
            output, results_markdown(result, describe_environment(None), command=command), marker=NOTES_MARKER
        )
        print(f"\nWrote {output}")
    print(f"Logs: {options.work_dir}")
    active = percentile([d.active_ms for d in result.deploys], 0.5)
    from_zero = percentile([w.request_ms for w in result.wakes], 0.5)
    missed = active >= GOAL_ACTIVE_MS or from_zero >= GOAL_FROM_ZERO_MS
    return 1 if missed and args.check_goals else 0


if __name__ == "__main__":
    sys.exit(main())

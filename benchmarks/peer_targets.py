"""The peers: LitServe, BentoML and Ray Serve, each serving `benchmarks/peers/<app>.py` from its own venv.

Each peer is installed by the harness from its public package (`peer_envs.py`: a venv under the cache dir,
outside the repo, reused while its requirements stay the same) and runs the app we wrote for it, which serves
the scenarios' paths with the same answers. Settings, each the framework's own recommendation for production
at its default worker count (the apps' docstrings say more):

- LitServe: `run(log_level="warning", generate_client_file=False)`, one worker per `LitAPI` (three for three
  routes), with its default queues (`litserve`, what the issue's figures describe and the goal is checked
  against), and again with `LitServer(..., fast_queue=True)` (`litserve-fastq`: ZeroMQ between the HTTP server
  and the workers, its advice above 100 requests/s), from the same venv.
- BentoML: `bentoml serve` (production mode) with one worker, the access log off, usage tracking off.
- Ray Serve: a local single-node Ray on loopback, Serve's HTTP proxy in its high-throughput mode
  (`RAY_SERVE_THROUGHPUT_OPTIMIZED=1`), one replica behind a FastAPI ingress, the access log off, usage stats
  off. Its start (Ray itself, then Serve) counts in its start-to-first-response.

A peer is up when the no-op answers 200, so its start time runs from process start to its first good answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.peer_envs import PeerEnv, ensure_env, installed_versions, peer_env
from benchmarks.targets import BENCHMARKS_DIR, NOOP_READY, Target

PEER_APPS_DIR = BENCHMARKS_DIR / "peers"


@dataclass(frozen=True, kw_only=True)
class Peer:
    """A framework to compare with fnserve.

    Attributes:
        name: The target's name, in tables and `--peers`.
        description: One line for RESULTS.md.
        requirements: What pip installs into its venv.
        packages: The packages whose versions RESULTS.md shows.
        command: `(venv, port) -> argv` that serves the peer's app on 127.0.0.1:`port` in the foreground.
        env: Variables added to the harness's environment for it.
        startup_timeout_s: How long it may take from process start to its first good answer.
    """

    name: str
    description: str
    requirements: tuple[str, ...]
    packages: tuple[str, ...]
    command: Callable[[PeerEnv, int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 60.0
    venv_name: str | None = None  # another peer's venv, when this one is the same package with other settings


LITSERVE = Peer(
    name="litserve",
    description="LitServe: a `LitAPI` per route, default queues and workers (`peers/litserve_app.py`)",
    requirements=("litserve>=0.2.16", "python-multipart"),  # multipart: the upload scenario
    packages=("litserve", "fastapi", "uvicorn", "pyzmq"),
    command=lambda venv, port: [str(venv.python), str(PEER_APPS_DIR / "litserve_app.py"), "--port", str(port)],
)

LITSERVE_FAST_QUEUE = Peer(
    name="litserve-fastq",
    description="LitServe as above with `fast_queue=True` (ZeroMQ queues, its advice above 100 req/s)",
    requirements=LITSERVE.requirements,
    packages=LITSERVE.packages,
    command=lambda venv, port: [*LITSERVE.command(venv, port), "--fast-queue"],
    venv_name=LITSERVE.name,
)

BENTOML = Peer(
    name="bentoml",
    description="BentoML: one `@bentoml.service`, `bentoml serve` (production), 1 worker (`peers/bentoml_app.py`)",
    requirements=("bentoml>=1.4",),
    packages=("bentoml", "starlette", "uvicorn"),
    command=lambda venv, port: [
        str(venv.bin("bentoml")),
        "serve",
        "bentoml_app:Bench",
        "--working-dir",
        str(PEER_APPS_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ],
    env={"BENTOML_DO_NOT_TRACK": "true"},
)

RAY_SERVE = Peer(
    name="ray",
    description="Ray Serve: local Ray, 1 replica, FastAPI ingress, high-throughput mode (`peers/ray_serve_app.py`)",
    # multipart: FastAPI's UploadFile; numpy: the batching benchmark's function (benchmarks/batching.py)
    requirements=("ray[serve]>=2.56", "python-multipart", "numpy"),
    packages=("ray", "fastapi", "uvicorn"),
    command=lambda venv, port: [str(venv.python), str(PEER_APPS_DIR / "ray_serve_app.py"), "--port", str(port)],
    startup_timeout_s=180.0,
)

PEERS: dict[str, Peer] = {peer.name: peer for peer in (LITSERVE, LITSERVE_FAST_QUEUE, BENTOML, RAY_SERVE)}

# The harness's own interpreter settings must not reach a peer's venv.
_NOT_INHERITED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def peer_target(peer: Peer, cache_dir: Path) -> Target:
    """The target that installs `peer` into its venv under `cache_dir` (when needed) and serves its app."""
    venv = peer_env(peer.venv_name or peer.name, cache_dir)

    def install(work_dir: Path) -> dict[str, str]:
        ensure_env(venv, peer.requirements, log_path=work_dir / f"{peer.name}-install.log")
        return installed_versions(venv, peer.packages)

    def env(home: Path) -> dict[str, str]:
        inherited = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
        return {**inherited, **peer.env}

    return Target(
        name=peer.name,
        description=peer.description,
        command=lambda port, home: peer.command(venv, port),
        ready=NOOP_READY,
        env=env,
        startup_timeout_s=peer.startup_timeout_s,
        peer=True,
        install=install,
    )

"""One Ray Serve application served for a benchmark until it is stopped: a local single-node Ray (no cluster to
join), Serve's HTTP proxy on `--host`/`--port`, the application at route prefix `/` with Serve's access log off; SIGTERM
or SIGINT shut Serve and Ray down. The Ray peer apps (`ray_serve_app.py`, `ray_batching_app.py`,
`ray_handles_app.py`) each build their application and hand it here; each sets Ray's environment before importing it.
"""
# mypy: ignore-errors
# (Ray is not installed in the repo's venv.)

import argparse
import signal
import threading

import ray
from ray import serve


def serve_until_stopped(application, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ray.init()
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(application, route_prefix="/", logging_config={"enable_access_log": False})
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()

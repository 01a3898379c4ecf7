"""Prometheus metrics at `/metrics`: what the server counts as it goes, and what it reads off its parts when scraped.

Counting is on the hot path, so it is plain dicts and a bisect, with no locks (one event loop) and no
dependency. Gauges (replicas, requests in flight and waiting, queued jobs) are not kept up to date at all:
`render` reads them from the supervisor when Prometheus asks.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fnserve.controlplane.supervisor import LiveDeployment
    from fnserve.spec import EndpointSpec

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Seconds. Requests: from well under a millisecond (the gateway's own overhead) to minutes (a model's call).
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds. Replica starts: a forked worker in tens of ms, an interpreter in hundreds, a model in minutes.
COLD_START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Calls per batch of a batched endpoint (`@fs.batch`), and seconds its first call waited for the batch to start.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Cumulative buckets as Prometheus reads them, counted per bucket and summed when rendered."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> Iterator[str]:
        running = 0
        for bound, count in zip((*map(_number, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            yield f'{name}_bucket{{{labels},le="{bound}"}} {running}'
        yield f"{name}_sum{{{labels}}} {_number(self.sum)}"
        yield f"{name}_count{{{labels}}} {self.count}"


class Metrics:
    """One server's counters. The gateway counts requests, the supervisor replica starts and failures."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}  # (service, status) → count
        self.latency: dict[str, Histogram] = {}  # by service
        self.cold_starts: dict[str, Histogram] = {}  # by service
        self.replica_failures: dict[str, int] = {}  # by service
        self.websockets_opened: dict[str, int] = {}  # by service: WebSockets relayed to an app (gateway/websocket.py)
        self.websockets_open: dict[str, int] = {}  # by service: those open now
        self.batch_sizes: dict[tuple[str, str], Histogram] = {}  # by (service, endpoint key): BATCH frames
        self.batch_waits: dict[tuple[str, str], Histogram] = {}

    def request(self, service: str, status: int, seconds: float) -> None:
        key = (service, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(service)
        if histogram is None:
            histogram = self.latency[service] = Histogram(REQUEST_BUCKETS)
        histogram.observe(seconds)

    def cold_start(self, service: str, seconds: float) -> None:
        histogram = self.cold_starts.get(service)
        if histogram is None:
            histogram = self.cold_starts[service] = Histogram(COLD_START_BUCKETS)
        histogram.observe(seconds)

    def websocket_opened(self, service: str) -> None:
        self.websockets_opened[service] = self.websockets_opened.get(service, 0) + 1
        self.websockets_open[service] = self.websockets_open.get(service, 0) + 1

    def websocket_closed(self, service: str) -> None:
        self.websockets_open[service] -= 1

    def batch_of(self, service: str, endpoints: Sequence[EndpointSpec], index: int, size: int, wait_s: float) -> None:
        """A replica started a batch of `size` calls of endpoint `index` (a BATCH frame), its first call having waited
        `wait_s`."""
        if not 0 <= index < len(endpoints):
            return
        key = (service, endpoints[index].key)
        sizes = self.batch_sizes.get(key)
        if sizes is None:
            sizes = self.batch_sizes[key] = Histogram(BATCH_SIZE_BUCKETS)
            self.batch_waits[key] = Histogram(BATCH_WAIT_BUCKETS)
        sizes.observe(size)
        self.batch_waits[key].observe(wait_s)

    def replica_failed(self, service: str) -> None:
        self.replica_failures[service] = self.replica_failures.get(service, 0) + 1

    def render(
        self, deployments: Iterable[LiveDeployment], queued_jobs: Callable[[str], int], held_jobs: int = 0
    ) -> bytes:
        """The exposition text: the counters, then gauges read now from each running version and the queue."""
        lines: list[str] = []
        _family(lines, "fnserve_requests_total", "counter", "Requests answered, by service and HTTP status.")
        for (service, status), count in sorted(self.requests.items()):
            lines.append(f'fnserve_requests_total{{service="{_escape(service)}",status="{status}"}} {count}')
        _family(lines, "fnserve_request_duration_seconds", "histogram", "Time from request to the end of its answer.")
        for service, histogram in sorted(self.latency.items()):
            lines.extend(histogram.lines("fnserve_request_duration_seconds", f'service="{_escape(service)}"'))
        _family(lines, "fnserve_replica_cold_start_seconds", "histogram", "Replica process start to READY.")
        for service, histogram in sorted(self.cold_starts.items()):
            lines.extend(histogram.lines("fnserve_replica_cold_start_seconds", f'service="{_escape(service)}"'))
        _family(
            lines, "fnserve_replica_failures_total", "counter", "Replicas that died, failed to start or were killed."
        )
        for service, count in sorted(self.replica_failures.items()):
            lines.append(f'fnserve_replica_failures_total{{service="{_escape(service)}"}} {count}')
        _family(lines, "fnserve_websockets_total", "counter", "WebSockets accepted by an app, by service.")
        for service, count in sorted(self.websockets_opened.items()):
            lines.append(f'fnserve_websockets_total{{service="{_escape(service)}"}} {count}')
        _family(lines, "fnserve_websockets_open", "gauge", "WebSockets open now, by service.")
        for service, count in sorted(self.websockets_open.items()):
            lines.append(f'fnserve_websockets_open{{service="{_escape(service)}"}} {count}')
        _family(lines, "fnserve_batch_size", "histogram", "Calls per batch of a batched endpoint (@fs.batch).")
        for (service, key), histogram in sorted(self.batch_sizes.items()):
            lines.extend(
                histogram.lines("fnserve_batch_size", f'service="{_escape(service)}",endpoint="{_escape(key)}"')
            )
        _family(
            lines,
            "fnserve_batch_wait_seconds",
            "histogram",
            "How long the first call of a batch waited for the batch to start (@fs.batch).",
        )
        for (service, key), histogram in sorted(self.batch_waits.items()):
            labels = f'service="{_escape(service)}",endpoint="{_escape(key)}"'
            lines.extend(histogram.lines("fnserve_batch_wait_seconds", labels))
        running = sorted(deployments, key=lambda live: (live.name, live.version.number))
        _gauges(lines, running, queued_jobs)
        _multiplexed(lines, running)
        _family(
            lines,
            "fnserve_jobs_held",
            "gauge",
            "Jobs this server holds in memory: queued or running (and finished ones whose outcome is not saved yet).",
        )
        lines.append(f"fnserve_jobs_held {held_jobs}")
        return ("\n".join(lines) + "\n").encode()


def _gauges(lines: list[str], deployments: list[LiveDeployment], queued_jobs: Callable[[str], int]) -> None:
    families = (
        ("fnserve_replicas", "Replicas of a running version, by state.", None),
        ("fnserve_replicas_target", "Replicas the autoscaler wants now.", lambda live: live.target),
        ("fnserve_requests_in_flight", "Calls being served by replicas.", lambda live: live.in_flight),
        ("fnserve_requests_waiting", "Calls waiting for a free replica slot.", lambda live: len(live.waiting)),
        ("fnserve_jobs_queued", "Jobs queued for the version.", lambda live: queued_jobs(live.version.version_id)),
    )
    for name, help_text, read in families:
        _family(lines, name, "gauge", help_text)
        for live in deployments:
            labels = f'service="{_escape(live.name)}",version="{live.version.number}"'
            if read is not None:
                lines.append(f"{name}{{{labels}}} {read(live)}")
                continue
            states: dict[str, int] = {}
            for replica in live.replicas.values():
                states[replica.state.value] = states.get(replica.state.value, 0) + 1
            for state, count in sorted(states.items()):
                lines.append(f'{name}{{{labels},state="{state}"}} {count}')


def _multiplexed(lines: list[str], deployments: list[LiveDeployment]) -> None:
    """Per replica of a service with `@fs.multiplexed` loaders (one that reported models): the models it holds, and
    its loads and evictions so far (counted by the replica; a replacement starts again from 0, as its label says)."""
    families = (
        ("fnserve_multiplexed_models", "gauge", "Multiplexed models a replica holds or is loading."),
        ("fnserve_multiplexed_model_loads_total", "counter", "Multiplexed models a replica loaded."),
        ("fnserve_multiplexed_model_evictions_total", "counter", "Multiplexed models a replica dropped (LRU)."),
    )
    reporting = [
        (live, replica_id, connection)
        for live in deployments
        for replica_id, replica in sorted(live.replicas.items())
        if (connection := replica.connection) is not None and (connection.models or connection.model_loads)
    ]
    for index, (name, kind, help_text) in enumerate(families):
        _family(lines, name, kind, help_text)
        for live, replica_id, connection in reporting:
            labels = f'service="{_escape(live.name)}",version="{live.version.number}",replica="{_escape(replica_id)}"'
            value = (len(connection.models), connection.model_loads, connection.model_evictions)[index]
            lines.append(f"{name}{{{labels}}} {value}")


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

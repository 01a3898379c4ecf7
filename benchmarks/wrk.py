"""Drive wrk (https://github.com/wg/wrk) for one scenario at one concurrency, and parse what it prints."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.scenarios import Scenario

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something the parser does not understand."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured. Latencies in milliseconds."""

    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        """Responses that were not 2xx/3xx plus connect, read, write and timeout errors."""
        return self.non_2xx + self.socket_errors


def find_wrk() -> str | None:
    """Path of the wrk binary, or None when it is not installed (`benchmarks/setup.sh` installs it)."""
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    """First words of `wrk -v`, e.g. `wrk debian/4.1.0-3+b2 [epoll]`."""
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first_line = (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else "wrk (unknown)"
    return first_line.split(" Copyright")[0].strip()


def _lua_string(value: str | bytes) -> str:
    """A Lua string literal for any bytes: safe ASCII as is, every other byte as a three-digit `\\ddd` escape."""
    raw = value.encode() if isinstance(value, str) else value
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 {}[]:,._-/+=;"
    return '"' + "".join(chr(byte) if byte in safe else f"\\{byte:03d}" for byte in raw) + '"'


def lua_script(scenario: Scenario, extra_lua: str = "") -> str:
    """A wrk script that sends the scenario's request on every call, followed by `extra_lua` (wrk's hooks)."""
    lines = [f"wrk.method = {_lua_string(scenario.method)}", f"wrk.body = {_lua_string(scenario.body)}"]
    lines += [f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}" for name, value in scenario.headers.items()]
    return "\n".join(lines) + "\n" + extra_lua


def threads_for(connections: int) -> int:
    """wrk threads for a concurrency: one per connection, at most two (so wrk leaves CPU to the server)."""
    return min(connections, 2)


def run_wrk(
    wrk: str,
    *,
    url: str,
    scenario: Scenario,
    connections: int,
    duration_s: float,
    script_dir: Path,
    request_timeout_s: float = 5.0,
) -> WrkResult:
    """Load `url + scenario.path` with `connections` connections for `duration_s` seconds and parse the result."""
    return parse_wrk_output(
        run_wrk_output(
            wrk,
            url=url,
            scenario=scenario,
            connections=connections,
            duration_s=duration_s,
            script_dir=script_dir,
            request_timeout_s=request_timeout_s,
        )
    )


def run_wrk_output(
    wrk: str,
    *,
    url: str,
    scenario: Scenario,
    connections: int,
    duration_s: float,
    script_dir: Path,
    request_timeout_s: float = 5.0,
    extra_lua: str = "",
) -> str:
    """`run_wrk`, returning wrk's whole stdout unparsed; what `extra_lua`'s `done` hook prints follows the report."""
    script = script_dir / f"{scenario.name}.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(lua_script(scenario, extra_lua))
    argv = [
        wrk,
        f"--connections={connections}",
        f"--threads={threads_for(connections)}",
        f"--duration={max(1, round(duration_s))}s",
        f"--timeout={request_timeout_s:g}s",
        f"--script={script}",
        "--latency",
        url.rstrip("/") + scenario.path,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {duration_s + 30:g} s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {' '.join(argv)}\n{done.stdout}{done.stderr}")
    return done.stdout


def _time_ms(number: str, unit: str) -> float:
    return float(number) * _TIME_UNITS_MS[unit]


def parse_wrk_output(text: str) -> WrkResult:
    """Parse wrk's text report (run with `--latency`) into a `WrkResult`.

    Raises:
        WrkError: A line the result needs is missing (the whole output is in the message).
    """

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            raise WrkError(f"Could not find /{pattern}/ in wrk's output:\n{text}")
        return match

    percentiles = {
        int(m["pct"]): _time_ms(m["num"], m["unit"])
        for m in re.finditer(r"^\s+(?P<pct>\d+)%\s+(?P<num>[\d.]+)(?P<unit>us|ms|s|m|h)\s*$", text, re.MULTILINE)
    }
    if 50 not in percentiles or 99 not in percentiles:
        raise WrkError(f"No 50%/99% latency lines in wrk's output (was --latency passed?):\n{text}")
    total = find(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        requests=int(total[1]),
        duration_s=_time_ms(total[2], total[3]) / 1000,
        requests_per_s=float(find(r"^Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
    )

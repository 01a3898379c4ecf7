"""Running the `fnserve` command line as the installed console script, against a server this test process runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from fnserve.auth import in_process_key
from fnserve.testing import wait_until

FNSERVE = Path(sys.executable).parent / "fnserve"
REPO = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT_S = 30
STOP_DEADLINE_S = 20
EXIT_ON_SIGINT = (0, 128 + signal.SIGINT)  # uvicorn re-raises the captured SIGINT once shut down: 130


def cli_env(url: str | None = None) -> dict[str, str]:
    """The environment for the CLI: wide enough that Rich wraps no line, unbuffered, pointing at `url` (a server
    this test process runs) with its owner key."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
    env.update({"COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    if url is not None:
        env["FNSERVE_URL"] = url
        env["FNSERVE_API_KEY"] = in_process_key(url) or ""
    return env


def fnserve(*args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FNSERVE), *args],
        capture_output=True,
        text=True,
        env=cli_env(url),
        cwd=REPO,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


class Foreground:
    """A long-running `fnserve` command in its own session, its output collected line by line by threads."""

    def __init__(self, *args: str, command: list[str] | None = None, cwd: Path = REPO) -> None:
        """`fnserve *args`, or `command` (e.g. `python app.py`), run from `cwd`."""
        self.process = subprocess.Popen(
            command or [str(FNSERVE), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=cwd,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._collect, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._collect, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _collect(stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.stdout)

    def wait_for(self, pattern: str, *, timeout_s: float) -> re.Match[str]:
        """The first match of `pattern` in stdout, once it appears; fails early if the command exits."""

        def seen() -> re.Match[str] | None:
            match = re.search(pattern, self.output)
            if match is None and self.process.poll() is not None:
                raise AssertionError(
                    f"fnserve exited with {self.process.returncode} before printing {pattern!r}:\n"
                    f"{self.output}{''.join(self.stderr)}"
                )
            return match

        found = wait_until(seen, timeout_s=timeout_s, what=f"output matching {pattern!r}")
        assert found is not None
        return found

    def interrupt(self) -> int:
        """Send SIGINT (as Ctrl-C would) and return the exit code, which must come within the deadline."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=STOP_DEADLINE_S)
        for reader in self._readers:  # the pipes are closed now: the readers finish with the last lines
            reader.join(timeout=5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE_S)
        for reader in self._readers:
            reader.join(timeout=5)
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.process.stdout.close()
        self.process.stderr.close()

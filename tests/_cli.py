"""Running the `fnserve` command line as the installed console script, against a server this test process runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fnserve.auth import in_process_key

FNSERVE = Path(sys.executable).parent / "fnserve"
REPO = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT_S = 30


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

"""`fnserve ... --help` for every command, `fnserve --version` and shell completion, run as the installed script."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

import typer
from _cli import COMMAND_TIMEOUT_S, FNSERVE, cli_env, fnserve

from fnserve.client.cli import app

# What Rich leaves of a help text whose `[default: ...]` it took for markup: "Port ." or "The server . [env var".
LOST_DEFAULT = re.compile(r"\w \.(\s|$)")


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every visible command and group of the CLI, with the words that name it."""
    if getattr(command, "hidden", False):
        return
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def test_every_help_keeps_its_defaults_and_describes_every_argument_and_option() -> None:
    """
    1. Walk the CLI's commands and groups; each one's parameters all have a help text.
    2. Run `fnserve <command> --help` for each: no line lost a `[default: ...]` to Rich's markup, and each option
       whose default is described (`show_default="..."`) shows it.
    """
    found = list(commands(typer.main.get_command(app)))
    assert len(found) > 30
    undescribed = [
        f"{' '.join(path) or 'fnserve'} {parameter.name}"
        for path, command in found
        for parameter in command.params
        if not getattr(parameter, "help", None)
    ]
    assert undescribed == []

    with ThreadPoolExecutor(max_workers=2) as pool:
        helps = list(pool.map(lambda item: fnserve(*item[0], "--help", url=None), found))
    for (path, command), result in zip(found, helps, strict=True):
        assert result.returncode == 0, result.stderr
        lost = [line for line in result.stdout.splitlines() if LOST_DEFAULT.search(line)]
        assert lost == [], f"`fnserve {' '.join(path)} --help` lost a default:\n" + "\n".join(lost)
        for parameter in command.params:
            if isinstance(getattr(parameter, "show_default", None), str):
                assert f"[default: ({parameter.show_default})]" in result.stdout, (path, parameter.name)


def test_server_and_url_helps_show_their_defaults() -> None:
    server = fnserve("server", "--help", url=None).stdout
    assert "[default: (127.0.0.1)]" in server
    assert "[default: (8000)]" in server
    invoke = fnserve("invoke", "--help", url=None).stdout
    assert "[default: (http://127.0.0.1:8000)]" in invoke
    assert "[default: (the route's)]" in invoke


def test_version_prints_the_installed_version() -> None:
    result = fnserve("--version", url=None)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fnserve {version('fnserve')}"


def test_show_completion_prints_a_completion_script_for_the_shell_named() -> None:
    # Typer takes the shell's name only with its detection off (else it looks for a shell among the parent
    # processes, which a test run from a job runner may not have, and ignores the name).
    result = subprocess.run(
        [str(FNSERVE), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        env={**cli_env(None), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "_FNSERVE_COMPLETE" in result.stdout
    assert "--install-completion" in fnserve("--help", url=None).stdout

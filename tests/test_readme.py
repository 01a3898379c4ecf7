"""The README's quickstart runs as written: the service, the shell commands, the output, the Python client."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from fnserve.settings import Settings
from fnserve.testing import run_server

README = Path(__file__).parent.parent / "README.md"
DEFAULT_URL = "http://127.0.0.1:8000"


def readme_blocks() -> dict[str, str]:
    """Code blocks that follow a `<!-- readme-test: NAME -->` marker, by name."""
    pattern = re.compile(r"<!-- readme-test: (\S+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)
    return {name: body for name, body in pattern.findall(README.read_text())}


def test_readme_mentions_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    """
    1. Write the README's app.py into a fresh project folder.
    2. Start a real server; run the README's `fnserve deploy` against it, the CLI finding the owner key in the
       server's home folder as it would on one machine.
    3. Send the README's curl request (as httpx, same method, URL, headers, body) with the token the deploy
       printed in place of $TOKEN; expect the README's output.
    4. Run the README's jobs block, then its Python client block.
    """
    blocks = readme_blocks()
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(blocks["app.py"])
    commands = [line.split("#")[0].strip() for line in blocks["shell"].splitlines()]
    deploy = next(c for c in commands if c.startswith("fnserve deploy"))
    curl = next(c for c in commands if c.startswith("curl"))
    home = tmp_path / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url:
        env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
        env.update({"FNSERVE_URL": url, "FNSERVE_HOME": str(home), "COLUMNS": "200"})
        fnserve = str(Path(sys.executable).parent / "fnserve")
        result = subprocess.run(
            [fnserve, *shlex.split(deploy)[1:]], cwd=project, env=env, capture_output=True, text=True, timeout=90
        )
        assert result.returncode == 0, result.stderr + result.stdout
        assert "ACTIVE" in result.stdout
        token = re.search(r"Token\s+(fst_[A-Za-z0-9_-]+)", result.stdout)
        assert token, result.stdout

        args = shlex.split(curl.replace("$TOKEN", token.group(1)))
        method = args[args.index("-X") + 1]
        target = next(a for a in args if a.startswith(DEFAULT_URL)).replace(DEFAULT_URL, url)
        headers = dict(args[i + 1].split(": ", 1) for i, flag in enumerate(args) if flag == "-H")
        response = httpx.request(method, target, headers=headers, content=args[args.index("-d") + 1], timeout=10)
        assert response.text == blocks["output"].strip()

        jobs = subprocess.run(
            [sys.executable, "-c", blocks["jobs"]], cwd=project, env=env, capture_output=True, text=True, timeout=90
        )
        assert jobs.returncode == 0, jobs.stderr
        assert re.search(r"job-\w+ (IN_QUEUE|IN_PROGRESS|COMPLETED)", jobs.stdout), jobs.stdout
        assert "Hello, world! My favorite number is 7" in jobs.stdout

        python = subprocess.run(
            [sys.executable, "-c", blocks["python"]], cwd=project, env=env, capture_output=True, text=True, timeout=90
        )
        assert python.returncode == 0, python.stderr
        assert "Hi My favorite number is 7" in python.stdout
        assert "ACTIVE" in python.stdout
        assert "{'message': 'Hi'}" in python.stdout


def test_readme_model_in_three_commands(tmp_path: Path, envs_dir: Path) -> None:
    """The README's model: train.py saves iris.skops, `fnserve deploy-model` serves it (its environment built by uv),
    and the README's curl gets the README's output."""
    blocks = readme_blocks()
    (tmp_path / "train.py").write_text(blocks["model-train"])
    commands = [line.split("#")[0].strip() for line in blocks["model-shell"].splitlines()]
    train, deploy, curl = commands
    home = tmp_path / "home"
    with run_server(home=home, settings=Settings(envs_dir=envs_dir), graceful_shutdown_s=2) as url:
        env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
        env.update({"FNSERVE_URL": url, "FNSERVE_HOME": str(home), "COLUMNS": "200"})
        trained = subprocess.run(
            [sys.executable, *shlex.split(train)[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
        )
        assert trained.returncode == 0, trained.stderr
        fnserve = str(Path(sys.executable).parent / "fnserve")
        result = subprocess.run(
            [fnserve, *shlex.split(deploy)[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr + result.stdout
        token = re.search(r"Token\s+(fst_[A-Za-z0-9_-]+)", result.stdout)
        assert token, result.stdout

        args = shlex.split(curl.replace("$TOKEN", token.group(1)))
        target = next(a for a in args if a.startswith(DEFAULT_URL)).replace(DEFAULT_URL, url)
        headers = dict(args[i + 1].split(": ", 1) for i, flag in enumerate(args) if flag == "-H")
        response = httpx.post(target, headers=headers, content=args[args.index("-d") + 1], timeout=30)
        assert response.text == blocks["model-output"].strip()

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


def readme_blocks_in_order() -> list[tuple[str, str]]:
    """Code blocks that follow a `<!-- readme-test: NAME -->` marker, as (name, text), in the README's order."""
    pattern = re.compile(r"<!-- readme-test: (\S+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)
    return pattern.findall(README.read_text())


def readme_blocks() -> dict[str, str]:
    return dict(readme_blocks_in_order())


def shell_lines(block: str) -> list[str]:
    """A bash block's commands, comments dropped."""
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


# The quickstart's blocks, as the README orders them; the model's (model-*) and the apps' (http-*) are paths of their
# own, run by test_readme_model_in_three_commands (it builds an environment with uv) and
# test_readme_existing_app_and_a_command.
OWN_PATHS = ("model-", "http-")
QUICKSTART = ["app.py", "shell", "output", "python", "jobs", "app-measure", "redeploy", "assets", "jobs-shell"]


def test_readme_mentions_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text


def test_readme_quickstart_runs_block_by_block_in_order(tmp_path: Path) -> None:
    """
    A reader's path, every marked block in the README's order, each in the state the ones before it left:
    1. `app.py`: written into a fresh project folder.
    2. `shell`: against a real server (its `fnserve server &`), `fnserve deploy app.py` as written, the CLI finding
       the owner key in the server's home folder; then its curl (as httpx: method, URL, headers, body) with the
       token the deploy printed in place of $TOKEN, answering `output`.
    3. `python`: deploys greeter again from Python (a new version) and leaves it running.
    4. `jobs`: a job on that running greeter.
    5. `app-measure` is appended to app.py, `redeploy` deploys it, `assets` uploads a file and measures it.
    6. `jobs-shell`, line by line, with the job and asset ids the lines before printed in place of JOB_ID and ast-….
    """
    blocks = readme_blocks_in_order()
    assert [name for name, _ in blocks if not name.startswith(OWN_PATHS)] == QUICKSTART
    project = tmp_path / "project"
    project.mkdir()
    home = tmp_path / "home"
    fnserve = str(Path(sys.executable).parent / "fnserve")
    with run_server(home=home, graceful_shutdown_s=2) as url:
        env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
        env.update({"FNSERVE_URL": url, "FNSERVE_HOME": str(home), "COLUMNS": "200"})

        def shell(command: str) -> subprocess.CompletedProcess[str]:
            args = shlex.split(command)
            assert args[0] == "fnserve", command
            result = subprocess.run(
                [fnserve, *args[1:]], cwd=project, env=env, capture_output=True, text=True, timeout=90
            )
            assert result.returncode == 0, f"{command}\n{result.stderr}{result.stdout}"
            return result

        def python(code: str) -> str:
            result = subprocess.run(
                [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True, timeout=90
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        for name, block in blocks:
            if name.startswith(OWN_PATHS):
                continue  # a path of its own
            if name == "app.py":
                (project / "app.py").write_text(block)
            elif name == "shell":
                commands = shell_lines(block)
                assert commands[0].startswith("fnserve server")  # the test's server stands for it
                deployed = shell(next(c for c in commands if c.startswith("fnserve deploy")))
                assert "ACTIVE" in deployed.stdout
                token = re.search(r"Token\s+(fst_[A-Za-z0-9_-]+)", deployed.stdout)
                assert token, deployed.stdout
                args = shlex.split(next(c for c in commands if c.startswith("curl")).replace("$TOKEN", token.group(1)))
                method = args[args.index("-X") + 1]
                target = next(a for a in args if a.startswith(DEFAULT_URL)).replace(DEFAULT_URL, url)
                headers = dict(args[i + 1].split(": ", 1) for i, flag in enumerate(args) if flag == "-H")
                body = args[args.index("-d") + 1]
                answer = httpx.request(method, target, headers=headers, content=body, timeout=10).text
            elif name == "output":
                assert answer == block.strip()
            elif name == "python":
                printed = python(block)
                assert "Hi My favorite number is 7" in printed
                assert "ACTIVE" in printed
                assert "{'message': 'Hi'}" in printed
            elif name == "jobs":
                printed = python(block)
                assert re.search(r"job-\w+ (IN_QUEUE|IN_PROGRESS|COMPLETED)", printed), printed
                assert "Hi My favorite number is 7" in printed
            elif name == "app-measure":
                (project / "app.py").write_text((project / "app.py").read_text() + "\n\n" + block)
            elif name == "redeploy":
                for command in shell_lines(block):
                    assert "ACTIVE" in shell(command).stdout
            elif name == "assets":
                (project / "photo.png").write_bytes(b"\x89PNG" + bytes(2044))  # the reader's own file: 2048 bytes
                printed = python(block)
                assert printed.count("': '2048 bytes'}") == 2, printed
            elif name == "jobs-shell":
                ids: dict[str, str] = {}
                for command in shell_lines(block):
                    command = command.replace("JOB_ID", ids.get("job", "JOB_ID")).replace("ast-…", ids.get("asset", ""))
                    printed = shell(command).stdout
                    if command.startswith("fnserve jobs submit"):
                        ids["job"] = printed.strip()
                    elif command.startswith("fnserve jobs get"):
                        assert "COMPLETED" in printed
                        assert "Hello, world! My favorite number is 7" in printed
                    elif command.startswith("fnserve assets upload"):
                        ids["asset"] = printed.split()[0]
                    elif command.startswith("fnserve invoke"):
                        assert f'"{ids["asset"]}": "2048 bytes"' in printed
                    elif command.startswith("fnserve assets ls"):
                        assert ids["asset"] in printed
            else:
                raise AssertionError(f"the README's block {name!r} is not run: give it a step here")


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


def test_readme_existing_app_and_a_command(tmp_path: Path) -> None:
    """The README's FastAPI app deployed with `fnserve deploy web.py:web` answers its curl with the README's output;
    the folder's files, served by `python -m http.server` as a command service, answer theirs."""
    blocks = readme_blocks()
    project = tmp_path / "project"
    project.mkdir()
    (project / "web.py").write_text(blocks["http-web.py"])
    home = tmp_path / "home"
    fnserve = str(Path(sys.executable).parent / "fnserve")
    with run_server(home=home, graceful_shutdown_s=2) as url:
        env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
        env.update({"FNSERVE_URL": url, "FNSERVE_HOME": str(home), "COLUMNS": "200"})
        answers = []
        token = ""
        for command in shell_lines(blocks["http-shell"]):
            args = shlex.split(command.replace("$TOKEN", token))
            if args[0] == "fnserve":
                result = subprocess.run(
                    [fnserve, *args[1:]], cwd=project, env=env, capture_output=True, text=True, timeout=120
                )
                assert result.returncode == 0, f"{command}\n{result.stderr}{result.stdout}"
                assert "ACTIVE" in result.stdout
                found = re.search(r"Token\s+(fst_[A-Za-z0-9_-]+)", result.stdout)
                assert found, result.stdout
                token = found.group(1)
            else:
                assert args[0] == "curl", command
                target = next(a for a in args if a.startswith(DEFAULT_URL)).replace(DEFAULT_URL, url)
                headers = dict(args[i + 1].split(": ", 1) for i, flag in enumerate(args) if flag == "-H")
                answers.append(httpx.get(target, headers=headers, timeout=30))
    item, source = answers
    assert item.status_code == 200
    assert item.text == blocks["http-output"].strip()
    assert source.status_code == 200
    assert source.text == blocks["http-web.py"]

"""A user's mistake is told in a line or two about their own file, never a traceback through typer and importlib:
syntax errors, a missing module of the project, a port in use, an initializer that raises."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from _cli import COMMAND_TIMEOUT_S, FNSERVE, cli_env, fnserve

from fnserve.client.api import Client

SERVICE = """import fnserve as fs


@fs.service(replicas=1, name="{name}")
def {name}():
    {body}
    return {{}}


@{name}.endpoint("/hello")
def hello() -> str:
    return "hi"
"""


def fnserve_in(cwd: Path, *args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    """`fnserve` run from the user's project folder, as they would run it."""
    return subprocess.run(
        [str(FNSERVE), *args],
        capture_output=True,
        text=True,
        env=cli_env(url),
        cwd=cwd,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def test_deploy_of_a_file_with_a_syntax_error_names_the_file_line_and_message(tmp_path: Path, refused_url: str) -> None:
    """The file is read before any server is asked: no server is needed."""
    (tmp_path / "app.py").write_text("import fnserve as fs\n\n\ndef broken(x: int) -> int\n    return x\n")

    result = fnserve_in(tmp_path, "deploy", "app.py", url=refused_url)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: app.py:4: SyntaxError: expected ':'"), result.stderr
    assert "def broken(x: int) -> int" in result.stderr
    assert "Traceback" not in result.stderr
    assert "importlib" not in result.stderr
    assert len(result.stderr.splitlines()) <= 4


def test_deploy_with_debug_shows_the_whole_traceback(tmp_path: Path, refused_url: str) -> None:
    (tmp_path / "app.py").write_text("import fnserve as fs\n\n\ndef broken(x: int) -> int\n    return x\n")

    result = fnserve_in(tmp_path, "--debug", "deploy", "app.py", url=refused_url)

    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "SyntaxError: expected ':'" in result.stderr


def test_deploy_naming_a_missing_module_of_the_project_is_one_clear_error(tmp_path: Path, refused_url: str) -> None:
    """`mypkg` is the project's own package, so `mypkg.helpers` is a typo or a file not written yet: no server
    could install it."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "app.py").write_text("import fnserve as fs\nfrom mypkg.helpers import load\n")

    result = fnserve_in(tmp_path, "deploy", "app.py", url=refused_url)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: app.py:2: ModuleNotFoundError: No module named 'mypkg.helpers'")
    assert "Traceback" not in result.stderr


def test_deploy_of_a_file_whose_top_level_raises_shows_the_users_frames_only(tmp_path: Path, refused_url: str) -> None:
    (tmp_path / "settings.py").write_text("def read():\n    return {}['model_path']\n")
    (tmp_path / "app.py").write_text("import fnserve as fs\nimport settings\n\nMODEL = settings.read()\n")

    result = fnserve_in(tmp_path, "deploy", "app.py", url=refused_url)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: settings.py:2: KeyError: 'model_path'"), result.stderr
    assert "called from app.py:4" in result.stderr
    assert "fnserve/" not in result.stderr


def test_server_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = fnserve("server", "--port", str(port), "--home", str(tmp_path / "home"), url=None)
    finally:
        taken.close()

    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"Error: port {port} on 127.0.0.1 is in use")
    assert "--port" in result.stderr
    assert "Errno" not in result.stderr
    assert "Traceback" not in result.stderr


def test_initializer_failure_shows_the_users_frames_no_token_and_the_real_log_folder(
    tmp_path: Path, server_url: str
) -> None:
    """
    1. Deploy a service whose initializer calls a function that raises.
    2. The panel says ERROR with the user's two frames (paths relative to the project) and no asyncio or fnserve
       frame; no token is printed (a never-shown token is revoked), and the error line names the real log folder.
    3. Fixed and deployed again, it is ACTIVE and this deploy prints a token.
    """
    project = tmp_path / "project"
    project.mkdir()
    failing = SERVICE.format(name="loader", body="load_model()").replace(
        "import fnserve as fs\n", "import fnserve as fs\n\n\ndef load_model():\n    raise RuntimeError('no weights')\n"
    )
    (project / "app.py").write_text(failing)

    result = fnserve_in(project, "deploy", "app.py", "--timeout", "30", url=server_url)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "State     ERROR" in result.stdout
    assert 'File "app.py", line 10, in loader' in result.stdout
    assert 'File "app.py", line 5, in load_model' in result.stdout
    assert "worker.py" not in result.stdout
    assert "concurrent" not in result.stdout
    assert "fst_" not in result.stdout
    logs_dir = tmp_path / "home" / "logs" / "loader"
    assert f"its replica logs are in {logs_dir}" in result.stderr
    assert "$FNSERVE_HOME" not in result.stderr
    with Client(server_url) as client:
        assert [token["active"] for token in client.list_tokens("loader")] == [False]

    (project / "app.py").write_text(SERVICE.format(name="loader", body="pass"))
    fixed = fnserve_in(project, "deploy", "app.py", "--timeout", "30", url=server_url)

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "State     ACTIVE" in fixed.stdout
    assert "Token     fst_" in fixed.stdout


def test_deploy_says_what_it_uploads_and_leaves_out_what_the_ignore_files_name(tmp_path: Path, server_url: str) -> None:
    """
    1. A project with a .gitignore (data/) and a .fnserveignore (.env) beside app.py.
    2. `fnserve deploy` says it uploads 3 files (app.py and the two ignore files), with their size.
    3. The code the server unpacked for the replicas holds those three and nothing ignored.
    """
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "app.py").write_text(SERVICE.format(name="tidy", body="pass"))
    (project / ".gitignore").write_text("data/\n")
    (project / ".fnserveignore").write_text(".env\n")
    (project / ".env").write_text("SECRET=1\n")
    (project / "data" / "big.bin").write_bytes(b"\0" * 100_000)

    result = fnserve_in(project, "deploy", "app.py", "--timeout", "30", url=server_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Uploading tidy: 3 files, {sum(p.stat().st_size for p in project.glob('*.*') if p.name != '.env')} B" in (
        result.stdout
    )
    (unpacked,) = (tmp_path / "home" / "code").iterdir()
    assert sorted(p.name for p in unpacked.iterdir()) == [".fnserveignore", ".gitignore", "app.py"]


def test_deploy_of_a_class_with_no_endpoint_and_no_call_is_refused_naming_the_fix(
    tmp_path: Path, refused_url: str
) -> None:
    """Refused where it is decorated, before any server is asked, instead of deploying ACTIVE with no route."""
    (tmp_path / "app.py").write_text(
        "import fnserve as fs\n\n\n@fs.service\nclass Model:\n    def predict(self) -> int:\n        return 1\n"
    )

    result = fnserve_in(tmp_path, "deploy", "app.py", url=refused_url)

    assert result.returncode == 1
    assert "service 'Model' has no endpoint, so it would serve nothing" in result.stderr
    assert '@fs.endpoint("/predict")' in result.stderr
    assert "__call__(self, request: fs.Request)" in result.stderr
    assert "Traceback" not in result.stderr

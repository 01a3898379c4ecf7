"""The CLI in scripts: `--json` on the listing commands, nothing cut when the output is not a terminal, and the
progress of a deploy as plain lines when piped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _cli import COMMAND_TIMEOUT_S, FNSERVE, REPO, cli_env, fnserve

GREETER = str(REPO / "examples" / "greeter.py")


def test_deploy_piped_shows_its_progress_as_plain_lines_then_the_json_listings_parse(
    server_url: str, tmp_path: Path
) -> None:
    """
    1. `fnserve deploy` with its output piped prints its progress as plain lines on stderr, ending ACTIVE.
    2. `ls`, `status`, `versions`, `tokens ls`, `assets ls`, `env ls` and `jobs ls` with `--json` print JSON that
       parses, holding the service, its version, a token, an uploaded asset.
    """
    deployed = fnserve("deploy", GREETER, "--replicas", "1", "--timeout", "30", url=server_url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    progress = [line for line in deployed.stderr.splitlines() if line.startswith("Deploying greeter: ")]
    assert progress, deployed.stderr
    assert progress[-1] == "Deploying greeter: ACTIVE, 1/1 replicas ready"
    (tmp_path / "photo.png").write_bytes(b"not really a png")
    assert fnserve("assets", "upload", str(tmp_path / "photo.png"), url=server_url).returncode == 0
    assert fnserve("tokens", "create", "greeter", "--label", "ci", url=server_url).returncode == 0

    def listed(*args: str) -> object:
        result = fnserve(*args, "--json", url=server_url)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    services = listed("ls")
    assert isinstance(services, list)
    assert [(s["name"], s["state"], s["url"]) for s in services] == [("greeter", "ACTIVE", f"{server_url}/greeter")]
    status = listed("status", "greeter")
    assert isinstance(status, dict)
    assert status["name"] == "greeter"
    assert len(status["replicas"]) == 1
    versions = listed("versions", "greeter")
    assert isinstance(versions, list)
    assert [(v["version"], v["state"]) for v in versions] == [(1, "ACTIVE")]
    tokens = listed("tokens", "ls", "greeter")
    assert isinstance(tokens, list)
    assert [(t["label"], t["active"]) for t in tokens] == [("ci", True)]
    assets = listed("assets", "ls")
    assert isinstance(assets, list)
    assert [a["size"] for a in assets] == [16]
    environments = listed("env", "ls")
    assert isinstance(environments, dict)
    assert set(environments) >= {"environments", "builds"}
    assert listed("jobs", "ls") == []


def test_listing_piped_to_a_narrow_reader_cuts_no_id_or_url(server_url: str) -> None:
    """Piped output has no width to fit: with COLUMNS=40 the row still holds the whole URL and id."""
    deployed = fnserve("deploy", GREETER, "--replicas", "1", "--timeout", "30", url=server_url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    env = {**cli_env(server_url), "COLUMNS": "40"}

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(FNSERVE), *args], capture_output=True, text=True, env=env, timeout=COMMAND_TIMEOUT_S, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    row = next(line for line in run("ls").splitlines() if "greeter" in line)
    assert f"{server_url}/greeter" in row
    assert "POST /hello, POST /stream" in row
    version_id = json.loads(run("versions", "greeter", "--json"))[0]["version_id"]
    assert any(version_id in line for line in run("versions", "greeter").splitlines())
    assert "…" not in run("status", "greeter")

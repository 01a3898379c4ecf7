"""Deploying a graph: order, Ray Serve's `.bind()`, and the graphs refused before anything starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _cli import fnserve
from bound_graph import app, cycle_b, leaf, needs_missing
from composed import combine

import fnserve as fs
from fnserve.composition.graph import plan
from fnserve.errors import SpecError

APPS = Path(__file__).parent.parent / "apps"


def test_plan_puts_leaves_first() -> None:
    """The services a service uses come in earlier levels; services of one level do not use each other."""
    levels = [[node.name for node in level] for level in plan(combine)]
    assert levels == [["preprocess", "model-a", "model-b", "narrow", "sleepy"], ["relay"], ["combine"]]
    pipeline = [[node.name for node in level] for level in plan(app)]
    assert pipeline == [["doubler", "adder"], ["pipeline"]]


def test_bound_arguments_become_handles_and_uses() -> None:
    """`Pipeline.bind(Doubler.bind(...), ...)`: the bound applications are handles in the initializer's arguments,
    and the pipeline's spec uses their services (so its replicas may call them)."""
    root = plan(app)[-1][0]
    first, second = root.args
    assert (first.service_name, second.service_name) == ("doubler", "adder")
    assert root.kwargs == {"label": "out"}
    assert root.spec.uses == ["doubler", "adder"]


def test_cycle_is_refused_naming_it() -> None:
    with pytest.raises(SpecError, match="cycle: cycle-b → cycle-a → cycle-b"):
        plan(cycle_b)


def test_cycle_and_missing_dependency_start_nothing(client: fs.Client, server_url: str) -> None:
    """
    1. Deploying a cycle fails at `fs.deploy(...)`, naming it: nothing reaches the server.
    2. Deploying a graph that names a service nobody deployed fails naming it, before even its leaf is uploaded.
    3. The server has no service at all afterwards.
    """
    with pytest.raises(SpecError, match="cycle"):
        fs.deploy(cycle_b, url=server_url)()
    with pytest.raises(SpecError, match="'needs-missing' uses 'not-deployed'"):
        fs.deploy(needs_missing, url=server_url)()
    assert client.list_services() == []
    assert leaf.name == "leaf"


def test_bound_graph_deploys_and_answers(server_url: str) -> None:
    """`fs.deploy(Pipeline.bind(Doubler.bind(factor=3), Adder.bind(amount=1), label="out"))()` deploys three
    services, each with its own bound arguments; the pipeline's handles call the other two: (2 × 3) + 1."""
    with fs.deploy(app, url=server_url)() as deployment:
        deployment.wait(timeout_s=60)
        answer = deployment.compute(x=2)
        assert answer["out"] == 7
        assert answer["handles"] == ["<Handle 'doubler'>", "<Handle 'adder'>"]
    with fs.get_deployment("doubler", url=server_url) as doubler:
        assert doubler.apply(x=5) == 15


def test_cli_deploys_a_bound_graph_from_a_project(server_url: str, tmp_path: Path) -> None:
    """`fnserve deploy app.py:app` for a `.bind()` graph: the project is uploaded once, the three services start
    from it leaves first, and the pipeline answers through its handles."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(APPS / "bound_graph.py", project / "app.py")
    result = fnserve("deploy", f"{project / 'app.py'}:app", url=server_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ACTIVE doubler, adder" in result.stdout + result.stderr
    with fs.get_deployment("pipeline", url=server_url) as deployment:
        assert deployment.compute(x=4)["out"] == 13
    with fs.Client(server_url) as client:
        assert {s["name"] for s in client.list_services()} == {"doubler", "adder", "pipeline"}

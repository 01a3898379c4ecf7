"""The docs name things as the code does."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_architecture_names_the_worker_command_the_local_backend_runs() -> None:
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    backend = (ROOT / "src" / "fnserve" / "backends" / "local.py").read_text()

    assert '"-m", "fnserve.runtime.worker"' in backend
    assert "`python -m fnserve.runtime.worker`" in architecture.split("## ")[0]  # the opening picture
    assert "bootstrap.py" in architecture.split("## ")[0]
    assert "`fnserve worker` process" not in architecture

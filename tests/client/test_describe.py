"""`Client.describe`: the NDJSON answer of `POST /v1/describe` read line by line as it arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

import fnserve as fs
from fnserve.archive import pack_project
from fnserve.errors import SpecError


def test_describe_raises_the_import_error_whole_when_its_message_holds_unicode_line_breaks(
    env_server_url: str, tmp_path: Path
) -> None:
    """JSON keeps U+2028 and U+0085 unescaped; they do not end an NDJSON line, so the error arrives as SpecError."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "odd.py").write_text('raise RuntimeError("one\\u2028two\\x85three")\n')

    with fs.Client(env_server_url) as client:
        code_sha256 = client.upload(pack_project(project))
        with pytest.raises(SpecError, match="one\u2028two\x85three"):
            client.describe(code_sha256, "odd:service", requirements=[])

"""Code archives: deterministic packing, and unpacking that never escapes its folder."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from fnserve.archive import pack_project, safe_extract
from fnserve.errors import InvalidRequest


def test_pack_project_is_deterministic_and_skips_caches(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    first = pack_project(tmp_path)
    (tmp_path / "app.py").touch()  # a new mtime must not change the digest
    assert pack_project(tmp_path) == first
    (tmp_path / "unpacked").mkdir()
    archive = tmp_path / "code.zip"
    archive.write_bytes(first)
    safe_extract(archive, tmp_path / "unpacked")
    assert sorted(p.name for p in (tmp_path / "unpacked").iterdir()) == ["app.py"]


@pytest.mark.parametrize("name", ["../escape.py", "/etc/evil.py", "a/../../escape.py"])
def test_safe_extract_refuses_paths_outside_the_folder(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(name, "boom")
    with pytest.raises(InvalidRequest, match="escapes the project folder"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_refuses_symlinks(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidRequest, match="symlink"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_refuses_non_zip(tmp_path: Path) -> None:
    archive = tmp_path / "not.zip"
    archive.write_bytes(b"plain text")
    with pytest.raises(InvalidRequest, match="not a valid zip"):
        safe_extract(archive, tmp_path / "out")

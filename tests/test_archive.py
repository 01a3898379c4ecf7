"""Code archives: deterministic packing, and unpacking that never escapes its folder."""

from __future__ import annotations

import hashlib
import stat
import zipfile
from pathlib import Path

import pytest

from fnserve.archive import pack_project, packed_project, safe_extract
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


def names_in(root: Path) -> list[str]:
    with packed_project(root) as packed, zipfile.ZipFile(packed.path) as bundle:
        return sorted(bundle.namelist())


def test_pack_honours_gitignore_files_at_every_level_and_negations(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.ckpt\n!keep.ckpt\ndata/\n/top-only.txt\n")
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "weights.ckpt").write_bytes(b"\0" * 10)
    (tmp_path / "keep.ckpt").write_bytes(b"\0")
    (tmp_path / "top-only.txt").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.bin").write_bytes(b"\0" * 10)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "top-only.txt").write_text("")  # anchored to the root: not this one
    (tmp_path / "pkg" / ".gitignore").write_text("local.py\n")
    (tmp_path / "pkg" / "local.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("")
    (tmp_path / "pkg" / "weights.ckpt").write_bytes(b"\0")

    assert names_in(tmp_path) == [
        ".gitignore",
        "app.py",
        "keep.ckpt",
        "pkg/.gitignore",
        "pkg/mod.py",
        "pkg/top-only.txt",
    ]


def test_fnserveignore_adds_to_gitignore_and_can_bring_a_git_ignored_file_back(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.bin\n")
    (tmp_path / ".fnserveignore").write_text("notebooks/\n.env\n!model.bin\n")
    for name in ("app.py", "model.bin", "other.bin", ".env"):
        (tmp_path / name).write_text("")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "try.ipynb").write_text("{}")

    assert names_in(tmp_path) == [".fnserveignore", ".gitignore", "app.py", "model.bin"]


def test_gitignore_of_the_work_tree_above_the_project_counts_and_none_beyond_it(tmp_path: Path) -> None:
    """The project is `repo/services/api`: the repo's .gitignore applies (its patterns relative to the repo), a
    .gitignore above the repo does not."""
    (tmp_path / ".gitignore").write_text("app.py\n")  # outside the work tree: not git's, not ours
    repo = tmp_path / "repo"
    project = repo / "services" / "api"
    project.mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / ".gitignore").write_text("*.log\n/services/api/scratch/\n")
    (project / "app.py").write_text("")
    (project / "run.log").write_text("")
    (project / "scratch").mkdir()
    (project / "scratch" / "notes.py").write_text("")

    assert names_in(project) == ["app.py"]


def test_packed_project_is_a_temporary_file_with_its_digest_and_counts(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "data.txt").write_text("0123456789")

    with packed_project(tmp_path) as packed:
        assert packed.files == 2
        assert packed.file_bytes == 16
        assert packed.sha256 == hashlib.sha256(packed.path.read_bytes()).hexdigest()
        assert packed.path.read_bytes() == pack_project(tmp_path)
    assert not packed.path.exists()

"""Code archives: deterministic packing, and unpacking that never escapes its folder."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import httpx
import pytest
from _auth import owner

import fnserve as fs
from fnserve.archive import pack_project, packed_project, safe_extract
from fnserve.errors import ArchiveTooLarge, InvalidRequest
from fnserve.settings import Settings
from fnserve.testing import run_server


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


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return path


def test_safe_extract_refuses_an_archive_over_the_unpacked_size_before_writing(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {"a.bin": os.urandom(300_000), "b.bin": os.urandom(300_000)})
    with pytest.raises(ArchiveTooLarge, match="FNSERVE_MAX_CODE_UNPACKED_BYTES") as refused:
        safe_extract(archive, tmp_path / "out", max_bytes=500_000)
    assert refused.value.http_status == 413
    assert refused.value.details == {
        "unpacked_bytes": 600_000,
        "limit": 500_000,
        "setting": "FNSERVE_MAX_CODE_UNPACKED_BYTES",
    }
    assert not (tmp_path / "out").exists()  # the declared sizes were enough: nothing was written


def test_safe_extract_refuses_too_many_entries(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"m{i}.py": b"x = 1\n" for i in range(21)})
    with pytest.raises(ArchiveTooLarge, match="21 entries; the server's limit is 20") as refused:
        safe_extract(archive, tmp_path / "out", max_files=20)
    assert refused.value.details == {"entries": 21, "limit": 20, "setting": "FNSERVE_MAX_CODE_FILES"}


def test_safe_extract_refuses_a_zip_bomb_by_its_ratio(tmp_path: Path) -> None:
    """The issue's case in small: a few KB that expand to many MiB of zeros, well under the size limit."""
    archive = _zip(tmp_path / "bomb.zip", {"app.py": b"x = 1\n", "data.bin": bytes(20 * 1024 * 1024)})
    assert archive.stat().st_size < 100_000
    with pytest.raises(ArchiveTooLarge, match=r"'data.bin' expands \d+ times .* zip bomb"):
        safe_extract(archive, tmp_path / "out")
    # A small repetitive file is fine: the ratio counts only past 1 MiB.
    small = _zip(tmp_path / "small.zip", {"zeros.bin": bytes(512 * 1024)})
    safe_extract(small, tmp_path / "small")
    assert (tmp_path / "small" / "zeros.bin").stat().st_size == 512 * 1024


def test_safe_extract_counts_the_bytes_written_not_only_the_declared_sizes(tmp_path: Path) -> None:
    """An archive whose central directory understates an entry's size is stopped, not trusted."""
    data = os.urandom(64 * 1024)
    archive = _zip(tmp_path / "liar.zip", {"app.py": data})
    raw = bytearray(archive.read_bytes())
    central = raw.rindex(b"PK\x01\x02")  # the central directory entry: its uncompressed size is at offset 24
    assert struct.unpack_from("<I", raw, central + 24)[0] == len(data)
    struct.pack_into("<I", raw, central + 24, 100)
    archive.write_bytes(bytes(raw))
    with pytest.raises(InvalidRequest):
        safe_extract(archive, tmp_path / "out", max_bytes=1000)
    assert sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file()) <= 1000


def test_safe_extract_makes_the_code_private(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "app.zip", {"pkg/app.py": b"x = 1\n", "pkg/sub/data.txt": b"hi"})
    safe_extract(archive, tmp_path / "out")
    for path in [tmp_path / "out", *(tmp_path / "out").rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_safe_extract_refuses_an_entry_named_twice(tmp_path: Path) -> None:
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as bundle, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name: that is the point
        bundle.writestr("app.py", "x = 1")
        bundle.writestr("app.py", "x = 2")
    with pytest.raises(InvalidRequest, match="names 'app.py' twice"):
        safe_extract(archive, tmp_path / "out")


@pytest.mark.parametrize(
    ("entries", "settings", "named"),
    [
        ({"echo.py": b"x = 1\n", "data.bin": bytes(40 * 1024 * 1024)}, Settings(), "zip bomb"),
        (
            {"echo.py": b"x = 1\n", "data.bin": b"".join(os.urandom(1024) for _ in range(3 * 1024))},
            Settings(max_code_unpacked_bytes=2 * 1024 * 1024),
            "FNSERVE_MAX_CODE_UNPACKED_BYTES",
        ),
        ({f"m{i}.py": b"" for i in range(30)}, Settings(max_code_files=25), "FNSERVE_MAX_CODE_FILES"),
    ],
    ids=["ratio", "unpacked-size", "file-count"],
)
def test_deploying_an_oversized_archive_is_refused_and_leaves_nothing_unpacked(
    tmp_path: Path, entries: dict[str, bytes], settings: Settings, named: str
) -> None:
    """1. Upload an archive over one of the server's limits, and register a version of it over HTTP.
    2. 413 `archive_too_large` in the standard envelope, naming the limit and the fix.
    3. Nothing is left under `$FNSERVE_HOME/code`, and no version was registered."""
    from echo import echo

    home = tmp_path / "home"
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with run_server(home=home, settings=settings, graceful_shutdown_s=2) as url, fs.Client(url) as client:
        sha256 = client.upload(bundle.getvalue())
        body = {
            "spec": echo.spec.model_dump(mode="json"),
            "code": {"kind": "archive", "sha256": sha256, "entrypoint": "echo:echo"},
        }
        answer = httpx.post(f"{url}/v1/services", json=body, headers=owner(url), timeout=30)
        assert answer.status_code == 413, answer.text
        error = answer.json()["error"]
        assert error["code"] == "archive_too_large"
        assert named in error["message"]
        assert list((home / "code").iterdir()) == []
        assert httpx.get(f"{url}/v1/services", headers=owner(url)).json() == []

"""Code archives: a project folder zipped the same way every time, and unzipped without escaping its folder.

What goes in: the project's files, less caches and virtualenvs, symlinks, and what its `.gitignore` files say (those
of the folder and its subfolders, and of the folders above it up to the top of its git work tree), then its
`.fnserveignore` files (same syntax, read after `.gitignore` at each level, so `!model.bin` brings back a file git
ignores). The zip is written file by file to disk and hashed from there: a project of large files never sits in
memory whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from fnserve.errors import InvalidRequest

MAX_PROJECT_BYTES = 200 * 1024 * 1024
IGNORE_FILES = (".gitignore", ".fnserveignore")
SKIP_DIRS = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"}
)
_CHUNK_BYTES = 1024 * 1024


def safe_extract(archive: Path, target: Path) -> None:
    """Unzip `archive` into `target`, refusing absolute paths, `..` and symlinks (zip-slip)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                name = PurePosixPath(member.filename)
                if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
                    raise InvalidRequest(f"code archive entry {member.filename!r} escapes the project folder")
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise InvalidRequest(f"code archive entry {member.filename!r} is a symlink; symlinks are refused")
            bundle.extractall(target)
    except zipfile.BadZipFile as exc:
        raise InvalidRequest(f"code archive is not a valid zip file ({exc}); upload it again") from None


@dataclass(frozen=True)
class _Rules:
    """One ignore file. Its patterns match paths relative to its own folder: `base` is that folder under the root
    (empty for the root and the folders above it), `prefix` the root's path seen from a folder above it."""

    base: PurePosixPath
    prefix: str
    spec: pathspec.GitIgnoreSpec

    def check(self, relative: PurePosixPath, is_dir: bool) -> bool | None:
        """True: ignored, False: brought back by a `!pattern`, None: no pattern here says."""
        if self.base.parts:
            if not relative.is_relative_to(self.base):
                return None
            relative = relative.relative_to(self.base)
        return self.spec.check_file(self.prefix + relative.as_posix() + ("/" if is_dir else "")).include


def _read_rules(folder: Path, base: PurePosixPath, prefix: str = "") -> list[_Rules]:
    rules = []
    for name in IGNORE_FILES:
        path = folder / name
        if path.is_file():
            lines = path.read_text(errors="replace").splitlines()
            rules.append(_Rules(base, prefix, pathspec.GitIgnoreSpec.from_lines(lines)))
    return rules


def _ignored(rules: list[_Rules], relative: PurePosixPath, *, is_dir: bool) -> bool:
    """git's answer for one path: the last pattern that matches it decides, deeper files after shallower ones."""
    verdict = False
    for rule in rules:
        found = rule.check(relative, is_dir)
        if found is not None:
            verdict = found
    return verdict


def _rules_above(root: Path) -> list[_Rules]:
    """The ignore files of the folders above `root` up to the top of its git work tree, outermost first; none when
    it is in no git work tree."""
    chain: list[Path] = []
    folder = root.resolve()
    while not (folder / ".git").exists():
        if folder.parent == folder:
            return []
        folder = folder.parent
        chain.append(folder)
    rules = []
    for above in reversed(chain):
        prefix = root.resolve().relative_to(above).as_posix() + "/"
        rules += _read_rules(above, PurePosixPath(), prefix)
    return rules


def project_files(root: Path) -> Iterator[tuple[Path, str]]:
    """The files a deploy of `root` packs, in a stable order, each with its name in the archive."""
    rules_in: dict[PurePosixPath, list[_Rules]] = {}
    for directory, dirnames, filenames in os.walk(root):  # top-down: a folder's rules are read before its children's
        folder = Path(directory)
        relative_dir = PurePosixPath(folder.relative_to(root).as_posix()) if folder != root else PurePosixPath()
        inherited = rules_in[relative_dir.parent] if relative_dir.parts else _rules_above(root)
        rules = rules_in[relative_dir] = inherited + _read_rules(folder, relative_dir)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (folder / d).is_symlink()
            and not _ignored(rules, relative_dir / d, is_dir=True)
        )
        for filename in sorted(filenames):
            path = folder / filename
            if path.is_symlink() or filename.endswith((".pyc", ".pyo")):
                continue
            if not _ignored(rules, relative_dir / filename, is_dir=False):
                yield path, (relative_dir / filename).as_posix()


@dataclass(frozen=True)
class PackedProject:
    """A project zipped on disk: its path, its sha256, and what went in (`files`, `file_bytes` before compression)."""

    path: Path
    sha256: str
    files: int
    file_bytes: int

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _pack(root: Path, target: Path, max_bytes: int) -> PackedProject:
    """Zip deterministically (sorted, fixed timestamps and modes) so equal code gives an equal digest."""
    total = files = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path, name in project_files(root):
            total += path.stat().st_size
            files += 1
            if total > max_bytes:
                raise InvalidRequest(
                    f"project folder {root} is over {max_bytes // (1024 * 1024)} MiB; move data out of it (or list it "
                    "in .fnserveignore) and load it in the initializer, or deploy from a smaller folder"
                )
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as source, bundle.open(info, "w", force_zip64=True) as sink:
                shutil.copyfileobj(source, sink, _CHUNK_BYTES)
    digest = hashlib.sha256()
    with target.open("rb") as packed:
        while chunk := packed.read(_CHUNK_BYTES):
            digest.update(chunk)
    return PackedProject(path=target, sha256=digest.hexdigest(), files=files, file_bytes=total)


@contextmanager
def packed_project(root: Path, *, max_bytes: int = MAX_PROJECT_BYTES) -> Iterator[PackedProject]:
    """`root` zipped into a temporary file, removed when the block ends."""
    handle, name = tempfile.mkstemp(prefix="fnserve-project-", suffix=".zip")
    os.close(handle)
    target = Path(name)
    try:
        yield _pack(root, target, max_bytes)
    finally:
        target.unlink(missing_ok=True)


def pack_project(root: Path, *, max_bytes: int = MAX_PROJECT_BYTES) -> bytes:
    """The archive's bytes, for callers that want them in hand (small projects in tests and benchmarks)."""
    with packed_project(root, max_bytes=max_bytes) as packed:
        return packed.path.read_bytes()

"""Code archives: a project folder zipped the same way every time, and unzipped without escaping its folder or
filling the disk.

What goes in: the project's files, less caches and virtualenvs, symlinks, and what its `.gitignore` files say (those
of the folder and its subfolders, and of the folders above it up to the top of its git work tree), then its
`.fnserveignore` files (same syntax, read after `.gitignore` at each level, so `!model.bin` brings back a file git
ignores). The zip is written file by file to disk and hashed from there: a project of large files never sits in
memory whole.

The dangerous cases `safe_extract` refuses: entries that escape the folder (absolute paths, `..`, backslashes,
symlinks: zip-slip), and archives that unpack to far more than they weigh (zip bombs: a 408 KB upload once unpacked
to 401 MiB). Sizes are checked twice: the sizes the archive declares before anything is written, and the bytes
actually written while extracting, so an archive that lies about its sizes is stopped at the limit too.
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

from fnserve._units import format_memory
from fnserve.errors import ArchiveTooLarge, InvalidRequest

MAX_PROJECT_BYTES = 200 * 1024 * 1024
IGNORE_FILES = (".gitignore", ".fnserveignore")
SKIP_DIRS = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"}
)
_CHUNK_BYTES = 1024 * 1024
# What one unpacked project may hold, unless the server is told otherwise (Settings.max_code_unpacked_bytes and
# max_code_files). `pack_project` refuses folders over MAX_PROJECT_BYTES on the client, so honest projects fit.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_FILES = 10_000
# An entry that expands more than this many times is refused as a zip bomb, once it is past RATIO_FLOOR_BYTES: source
# compresses 3 to 10 times, and a small file of zeros may expand far more without harm.
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 1024 * 1024


def safe_extract(
    archive: Path, target: Path, *, max_bytes: int = MAX_UNPACKED_BYTES, max_files: int = MAX_FILES
) -> None:
    """Unzip `archive` into the folder `target` (made if missing), its files private (0600, folders 0700).

    Raises InvalidRequest for paths outside the folder, symlinks, duplicate entries and files that are not zips, and
    ArchiveTooLarge past `max_bytes` unpacked, `max_files` entries or MAX_RATIO. What was written before a refusal
    stays in `target`: callers extract into a staging folder and remove it on failure.
    """
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            archive_bytes = archive.stat().st_size
            _check_members(members, archive_bytes, max_bytes, max_files)
            target.mkdir(mode=0o700, exist_ok=True)
            written = 0
            for member in members:
                written += _extract(bundle, member, target, max_bytes - written)
                if written > max_bytes:
                    raise _too_large(written, archive_bytes, max_bytes)
    except zipfile.BadZipFile as exc:
        raise InvalidRequest(f"code archive is not a valid zip file ({exc}); upload it again") from None


def _check_members(members: list[zipfile.ZipInfo], archive_bytes: int, max_bytes: int, max_files: int) -> None:
    """Everything that can be refused before a byte is written: names, links, counts and the declared sizes."""
    if len(members) > max_files:
        raise ArchiveTooLarge(
            f"code archive holds {len(members)} entries; the server's limit is {max_files}. Leave generated files and "
            "data out of the project folder, or raise FNSERVE_MAX_CODE_FILES on the server",
            details={"entries": len(members), "limit": max_files, "setting": "FNSERVE_MAX_CODE_FILES"},
        )
    declared = 0
    for member in members:
        name = PurePosixPath(member.filename)
        if not name.parts or name.is_absolute() or ".." in name.parts or "\\" in member.filename:
            raise InvalidRequest(f"code archive entry {member.filename!r} escapes the project folder")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise InvalidRequest(f"code archive entry {member.filename!r} is a symlink; symlinks are refused")
        declared += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
            raise ArchiveTooLarge(
                f"code archive entry {member.filename!r} expands {ratio:.0f} times ({format_memory(member.file_size)} "
                f"from {format_memory(member.compress_size)}), past the limit of {MAX_RATIO}: refused as a zip bomb. "
                "If it is real data, move it out of the project folder and load it in the initializer",
                details={"entry": member.filename, "ratio": round(ratio), "limit": MAX_RATIO},
            )
    if declared > max_bytes:
        raise _too_large(declared, archive_bytes, max_bytes)


def _extract(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, room: int) -> int:
    """Write one entry, counting the bytes it really holds, and stop once past its declared size or `room` bytes;
    returns how many it wrote."""
    relative = PurePosixPath(member.filename)
    folder = _make_folders(target, relative.parts if member.is_dir() else relative.parts[:-1])
    if member.is_dir():
        return 0
    try:
        # O_EXCL: an entry named twice is refused rather than overwritten; 0600: the code is the owner's alone.
        fd = os.open(folder / relative.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except (FileExistsError, IsADirectoryError):
        raise InvalidRequest(f"code archive names {member.filename!r} twice; pack the project again") from None
    written = 0
    with os.fdopen(fd, "wb") as sink, bundle.open(member) as source:
        while chunk := source.read(_CHUNK_BYTES):
            written += len(chunk)
            if written > member.file_size:
                raise InvalidRequest(
                    f"code archive entry {member.filename!r} holds more than the {member.file_size} bytes it declares; "
                    "pack the project again"
                )
            if written > room:
                return written  # the caller refuses the archive, naming the total
            sink.write(chunk)
    return written


def _make_folders(target: Path, parts: tuple[str, ...]) -> Path:
    """`target/parts...`, each folder made private (os.makedirs leaves the mode of intermediate folders alone)."""
    folder = target
    for part in parts:
        folder = folder / part
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise InvalidRequest(f"code archive has both a file and a folder named {part!r}") from None
    return folder


def _too_large(unpacked: int, archive_bytes: int, max_bytes: int) -> ArchiveTooLarge:
    return ArchiveTooLarge(
        f"code archive ({format_memory(archive_bytes)}) unpacks to more than {format_memory(max_bytes)}, the server's "
        f"limit (at least {format_memory(unpacked)}). Move data out of the project folder and load it in the "
        "initializer, or raise FNSERVE_MAX_CODE_UNPACKED_BYTES on the server",
        details={"unpacked_bytes": unpacked, "limit": max_bytes, "setting": "FNSERVE_MAX_CODE_UNPACKED_BYTES"},
    )


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

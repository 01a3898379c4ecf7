"""Code archives: a project folder zipped the same way every time, and unzipped without escaping its folder."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from fnserve.errors import InvalidRequest


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


def pack_project(root: Path, *, max_bytes: int = 200 * 1024 * 1024) -> bytes:
    """Zip a project folder deterministically (sorted, fixed timestamps) so equal code gives an equal digest."""

    skip_dirs = {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"}
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for directory, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and not d.endswith(".egg-info"))
            for filename in sorted(filenames):
                path = Path(directory) / filename
                if path.is_symlink() or filename.endswith((".pyc", ".pyo")):
                    continue
                total += path.stat().st_size
                if total > max_bytes:
                    raise InvalidRequest(
                        f"project folder {root} is over {max_bytes // (1024 * 1024)} MiB; move data out of it and "
                        "load it in the initializer, or deploy from a smaller folder"
                    )
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(info, path.read_bytes())
    return buffer.getvalue()

"""The home folder (`$FNSERVE_HOME`): private to its owner.

The folder and its own folders are 0700, what the server writes there 0600 (the database holds job inputs and
results, the logs whatever services print). `prepare_home` also fixes homes made before this was so, and
`create_private` writes small files (the owner key, the server id) whole or not at all.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

logger = logging.getLogger("fnserve.server")

# The folders the server keeps under its home; each is made 0700.
FOLDERS = ("artifacts", "assets", "code", "logs")


def prepare_home(home: Path) -> None:
    """Make the home and its folders (0700) and make private what an older server left readable by others."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fixed = int(make_private(home))
    for name in FOLDERS:
        (home / name).mkdir(mode=0o700, exist_ok=True)
        fixed += make_private(home / name)
    fixed += _fix_modes(home)
    if fixed:
        logger.warning("Made %d file(s) and folder(s) in %s private (0600, 0700): others could read them", fixed, home)


def make_private(path: Path) -> bool:
    """Take away group and other permissions from `path` (0700 for a folder, 0600 for a file), if it has any;
    True when it had."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode) or not mode & 0o077:
        return False
    os.chmod(path, 0o700 if stat.S_ISDIR(mode) else 0o600)
    return True


def _fix_modes(home: Path) -> int:
    """Homes from before fnserve made its files private: the home's own files, the stores' files, the logs; returns
    how many it changed. The inside of each unpacked project and environment is left as it is: its folder is
    private, so nobody else gets in."""
    fixed = 0
    for entry in os.scandir(home):
        if entry.is_file(follow_symlinks=False):
            fixed += make_private(Path(entry.path))
    for name in ("artifacts", "assets", "code"):
        for entry in os.scandir(home / name):
            fixed += make_private(Path(entry.path))
    for directory, dirnames, filenames in os.walk(home / "logs"):
        for name in (*dirnames, *filenames):
            fixed += make_private(Path(directory) / name)
    return fixed


def private_fd(path: Path, flags: int = os.O_WRONLY | os.O_APPEND | os.O_CREAT) -> int:
    """A file descriptor on `path`, the file created 0600 if it is new (logs, the database)."""
    return os.open(path, flags, 0o600)


def create_private(path: Path, data: bytes, *, replace: bool = False) -> bool:
    """Write `data` to a new 0600 file at `path`, whole or not at all; False (and nothing written) when `path` exists,
    unless `replace`.

    The bytes go to a temporary file first and are linked (or renamed) into place: a full disk leaves no empty or
    cut-off file where a reader would take it for the real one, and of two writers at once exactly one wins.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        Path(temporary).unlink(missing_ok=True)

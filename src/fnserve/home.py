"""The home folder (`$FNSERVE_HOME`): private to its owner, held by one server at a time, and cleared at start of
what a killed server left behind.

- Private: the folder and its own folders are 0700, what the server writes there 0600 (the database holds job inputs
  and results, the logs whatever services print). `prepare_home` also fixes homes made before this was so.
- One server per home: `HomeLock` holds an flock on `server.lock`. The OS drops it when the process ends, SIGKILL
  included, so a killed server never blocks the next; a second server on a home in use stops with HomeInUse, naming
  the first one's pid and URL, before it touches anything.
- Leftovers: temporary files of uploads and unpacks cut off by a kill (`remove_leftovers`, run once the lock is held,
  so no other server is writing them), and the replica socket folders (`/tmp/fnserve-*`) of servers that are gone
  (`SocketFolder.remove_stale`: each live server holds a lock in its own).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import IO

import orjson

from fnserve.disk import discard, storage_error
from fnserve.errors import HomeInUse

logger = logging.getLogger("fnserve.server")

LOCK_FILE = "server.lock"
# The folders the server keeps under its home; each is made 0700.
FOLDERS = ("artifacts", "assets", "code", "logs")
# Temporary names the stores write under before renaming into place; left behind only by a kill.
_LEFTOVERS = {"artifacts": (".upload-", "tmp"), "assets": (".upload-", ".result-"), "code": (".unpack-",)}


def prepare_home(home: Path) -> None:
    """Make the home and its folders (0700) and make private what an older server left readable by others.

    Raises StorageUnavailable when the home cannot be made or written (a read-only disk, another user's folder).
    """
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fixed = int(make_private(home))
        for name in FOLDERS:
            (home / name).mkdir(mode=0o700, exist_ok=True)
            fixed += make_private(home / name)
        fixed += _fix_modes(home)
    except OSError as exc:
        raise storage_error(exc, home) or exc from None
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
        discard(temporary)


def remove_leftovers(home: Path) -> int:
    """Remove the temporary files and folders that uploads and unpacks leave when the server is killed mid-way;
    returns how many. Only safe while this server holds the home's lock."""
    removed = 0
    for folder, prefixes in _LEFTOVERS.items():
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(home / folder):
                if entry.name.startswith(prefixes):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        discard(entry.path)
                    removed += 1
    if removed:
        logger.info("Removed %d temporary file(s) left in %s by a server that was stopped mid-write", removed, home)
    return removed


class HomeLock:
    """This server's hold on its home folder: an flock, released by the OS when the process ends however it ends."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / LOCK_FILE
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        """Hold the home, or raise HomeInUse naming the server that does (StorageUnavailable for a read-only home)."""
        try:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            file = os.fdopen(private_fd(self.path, os.O_RDWR | os.O_CREAT), "r+b")
        except OSError as exc:
            raise storage_error(exc, self.home) or exc from None
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(file)
            file.close()
            pid, url = holder.get("pid", "unknown"), holder.get("url") or "still starting, no URL yet"
            raise HomeInUse(
                f"Another fnserve server (pid {pid}, {url}) is using the home folder {self.home}; stop it first, or "
                "give this one another folder with --home or FNSERVE_HOME",
                details={"pid": holder.get("pid"), "url": holder.get("url"), "home": str(self.home)},
            ) from None
        self._file = file
        self.record(None)

    def record(self, url: str | None) -> None:
        """Write who holds the home (pid, and the URL once it listens) for a second server's error to name."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):  # only a message depends on it: a full disk must not stop the server
            self._file.seek(0)
            self._file.truncate()
            self._file.write(orjson.dumps({"pid": os.getpid(), "url": url}))
            self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


def _read_holder(file: IO[bytes]) -> dict[str, object]:
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        file.seek(0)
        holder = orjson.loads(file.read(4096) or b"{}")
        if isinstance(holder, dict):
            return holder
    return {}


class SocketFolder:
    """The short folder under /tmp that holds this server's replica socket (Unix socket paths are limited to about
    100 bytes, so it cannot live in the home), with a lock file that says its server is alive."""

    PREFIX = "fnserve-"
    NAME = re.compile(r"fnserve-[a-z0-9_]{8}")  # what mkdtemp(prefix="fnserve-") makes, and nothing else
    SOCKET = "replicas.sock"
    LOCK = "server.lock"
    # A folder with neither lock nor socket is a server stopped in its first moments, or one starting right now.
    EMPTY_STALE_AFTER_S = 3600.0

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix=self.PREFIX)
        # Locked under a temporary name, then renamed: a folder whose lock file is there always has it held.
        fd = os.open(os.path.join(self.path, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(os.path.join(self.path, ".lock"), os.path.join(self.path, self.LOCK))
        self._fd: int | None = fd

    @property
    def socket_path(self) -> str:
        return os.path.join(self.path, self.SOCKET)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @classmethod
    def remove_stale(cls, parent: str | None = None) -> int:
        """Remove the socket folders of this user's servers that are gone; returns how many."""
        parent = parent or tempfile.gettempdir()
        removed = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                if cls.NAME.fullmatch(entry.name) and _mine(entry) and cls._is_stale(entry.path):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed += 1
        if removed:
            logger.info("Removed %d replica socket folder(s) of fnserve servers that are gone", removed)
        return removed

    @classmethod
    def _is_stale(cls, path: str) -> bool:
        try:
            names = set(os.listdir(path))
        except OSError:
            return False
        if not names <= {cls.SOCKET, cls.LOCK}:
            return False  # not one of ours, or one being made right now (its lock under a temporary name)
        if cls.LOCK in names:
            try:
                fd = os.open(os.path.join(path, cls.LOCK), os.O_RDONLY)
            except OSError:
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # taken: its server is gone
            except BlockingIOError:
                return False
            finally:
                os.close(fd)
            return True
        if cls.SOCKET in names:  # from a server before socket folders had locks: alive if it still accepts
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                try:
                    probe.connect(os.path.join(path, cls.SOCKET))
                except ConnectionRefusedError:
                    return True
                except OSError:
                    return False
            return False
        with contextlib.suppress(OSError):
            return time.time() - os.stat(path).st_mtime > cls.EMPTY_STALE_AFTER_S
        return False


def _mine(entry: os.DirEntry[str]) -> bool:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()

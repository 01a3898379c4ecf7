"""Storage failures: a full, read-only or failing disk under `$FNSERVE_HOME`, or a database that cannot write.

They surface in many shapes: an OSError with ENOSPC from a file write, EROFS from a rename, EFBIG past a file size
limit, sqlite3's "database or disk is full", psycopg's DiskFull. `storage_error` turns each into the one error callers
answer, StorageFull or StorageUnavailable (507) naming the folder, so a request gets a clear answer and the log one
line instead of a traceback. None of them is fatal: nothing was half-written, and the next write tries the disk again,
so the server recovers by itself once there is room. `OutageLog` keeps background loops to one line per outage.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

from fnserve.errors import StorageFull, StorageUnavailable

# An OS error with one of these means there is no room: disk full, quota reached, or a file size limit (RLIMIT_FSIZE).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# These mean the storage refuses writes: mounted read-only, the folder's permissions changed, or the device failed.
UNAVAILABLE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
# SQLite's primary result codes (the low byte of `sqlite_errorcode`).
_SQLITE_FULL = 13
_SQLITE_UNAVAILABLE = frozenset({3, 8, 10, 14})  # PERM, READONLY, IOERR, CANTOPEN
# PostgreSQL SQLSTATEs: disk_full; read_only_sql_transaction, io_error.
_PG_FULL = frozenset({"53100"})
_PG_UNAVAILABLE = frozenset({"25006", "58030"})


def storage_error(exc: BaseException, where: Path | str) -> StorageUnavailable | None:
    """The StorageFull or StorageUnavailable that `exc` amounts to, naming `where` (the folder or database that was
    written), or None when `exc` is not a storage failure. An error already converted is returned as it is."""
    if isinstance(exc, StorageUnavailable):
        return exc
    failure = _failure(exc)
    if failure is None:
        return None
    is_full, reason = failure
    return full(where, reason) if is_full else unavailable(where, reason)


def _failure(exc: BaseException) -> tuple[bool, str] | None:
    """Whether `exc` is a storage failure that means no room (True) or storage refusing writes (False), with its
    words; None when it is neither. OSError by errno, SQLite by its result code, PostgreSQL by SQLSTATE."""
    if isinstance(exc, OSError) and exc.errno is not None:
        reason = f"{exc.strerror or os.strerror(exc.errno)} [{errno.errorcode.get(exc.errno, exc.errno)}]"
        return _kind(exc.errno in FULL_ERRNOS, exc.errno in UNAVAILABLE_ERRNOS, reason)
    sqlite_code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        reason = f"{exc} [{getattr(exc, 'sqlite_errorname', sqlite_code)}]"
        return _kind(sqlite_code & 0xFF == _SQLITE_FULL, sqlite_code & 0xFF in _SQLITE_UNAVAILABLE, reason)
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        words = str(exc).strip()
        reason = f"{words.splitlines()[0] if words else sqlstate} [SQLSTATE {sqlstate}]"
        return _kind(sqlstate in _PG_FULL, sqlstate in _PG_UNAVAILABLE, reason)
    return None


def _kind(is_full: bool, is_unavailable: bool, reason: str) -> tuple[bool, str] | None:
    return (True, reason) if is_full else (False, reason) if is_unavailable else None


def discard(path: Path | str) -> None:
    """Remove what a failed write left, if there is anything and it can be removed: on a read-only disk even removing
    a file that is not there fails (EROFS), and must not hide the error that matters."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def full(where: Path | str, reason: str) -> StorageFull:
    return StorageFull(
        f"Could not write to {where}: no room left ({reason}). Nothing was half-written; free some space there and "
        "retry",
        details={"path": str(where), "reason": reason},
    )


def unavailable(where: Path | str, reason: str) -> StorageUnavailable:
    return StorageUnavailable(
        f"Could not write to {where} ({reason}). Nothing was half-written; make it writable and retry",
        details={"path": str(where), "reason": reason},
    )


class OutageLog:
    """One line when a background loop's writes start failing for lack of storage, one when they work again, and
    nothing at each retry in between (a loop that saves every half second would otherwise log a line each time)."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.down = False

    def failed(self, error: StorageUnavailable) -> None:
        if not self.down:
            self.down = True
            self.logger.error("%s failed: %s", self.what, error.message)

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            self.logger.warning("%s works again: storage is writable", self.what)

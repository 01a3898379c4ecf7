"""Disks that really fail, for `fnserve server` in its own process: a small tmpfs that fills up (ENOSPC), a home
mounted read-only (EROFS), and a file size limit (EFBIG), with no root, loop device or CI privileges.

The first two run the server in a user and mount namespace of its own (`unshare --user --map-root-user --mount`),
where it may mount what nobody else sees: a tmpfs over its home, or its home bound read-only. Tests reach the files
through `/proc/<pid>/root` and remount with `nsenter`. Where unprivileged user namespaces are off (some containers
and distributions), `namespace_unavailable()` says so and those tests skip with that reason. A file size limit
(RLIMIT_FSIZE, inherited by the server) works everywhere, though it is a per-file limit, not a full disk.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

# `sh -c SCRIPT HOME fnserve server ...`: the script sees the home as $0 and the server's command as "$@".
TMPFS = 'mount -t tmpfs -o size={size},mode=0700 tmpfs "$0" && exec "$@"'
READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


@functools.cache
def namespace_unavailable() -> str | None:
    """Why a server cannot get a disk of its own here, or None when it can."""
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    with tempfile.TemporaryDirectory() as mount_point:
        probe = subprocess.run(
            [*UNSHARE, "sh", "-c", TMPFS.format(size="64k"), mount_point, "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    if probe.returncode != 0:
        return f"unprivileged user namespaces are not available here ({probe.stderr.strip() or probe.returncode})"
    return None


def in_namespace(home: Path, script: str) -> list[str]:
    """The command prefix that runs what follows in a namespace where `script` has prepared `home`."""
    return [*UNSHARE, "sh", "-c", script, str(home)]


def file_size_limit(limit_bytes: int) -> Callable[[], None]:
    """A `preexec_fn`: no file this process (or its children) writes may grow past `limit_bytes` (EFBIG; Python
    ignores the SIGXFSZ that comes with it). Only the soft limit: `lift_file_size_limit` can take it back."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.RLIM_INFINITY))


def lift_file_size_limit(pid: int) -> None:
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def seen_by(pid: int, path: Path) -> Path:
    """`path` as the process `pid` sees it (in its own mount namespace)."""
    return Path(f"/proc/{pid}/root{path}")


def fill(folder: Path) -> Path:
    """Write a file in `folder` until its disk has no byte left (ENOSPC); returns the file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (1024 * 1024, 4096, 1):
            chunk = bytes(size)
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def remount(pid: int, path: Path, mode: str) -> None:
    """Remount `path` in the mount namespace of `pid` with `mode` ("ro", "rw", "bind,ro", ...)."""
    subprocess.run(
        ["nsenter", "--target", str(pid), "--user", "--mount", "mount", "-o", f"remount,{mode}", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def bind(pid: int, path: Path) -> None:
    """Bind `path` onto itself in the mount namespace of `pid`, so it can be remounted on its own."""
    subprocess.run(
        ["nsenter", "--target", str(pid), "--user", "--mount", "mount", "--bind", str(path), str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )

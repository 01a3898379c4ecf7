"""What `fnserve run --reload` watches: the files a deploy of each project would pack (archive.py's rules, so an
ignored file never triggers a deploy), polled for a new mtime or size, and the project's modules forgotten before
the file is imported again. A poll, not inotify: the same on every OS and file system, and a project is small."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fnserve.archive import project_files
from fnserve.sdk.loader import split_target

POLL_INTERVAL_S = 0.3
SETTLE_S = 0.2  # an editor's save can be several writes: wait until the files stop changing

Snapshot = dict[str, tuple[int, int]]


def project_root(target: str) -> Path:
    """The folder a target's deploy packs: a file's own folder, or the working directory for a module name."""
    location, _ = split_target(target)
    path = Path(location)
    if location.endswith(".py") or "/" in location or path.is_file():
        return path.resolve().parent
    return Path.cwd().resolve()


def snapshot(root: Path) -> Snapshot:
    found: Snapshot = {}
    for path, name in project_files(root):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while we looked: the next poll sees it gone
            continue
        found[name] = (stat.st_mtime_ns, stat.st_size)
    return found


class ProjectWatcher:
    """Which of some project folders changed since the last call to `changed()`."""

    def __init__(self, roots: list[Path]) -> None:
        self.seen = {root: snapshot(root) for root in dict.fromkeys(roots)}

    def changed(self) -> list[Path]:
        changed = [root for root, seen in self.seen.items() if snapshot(root) != seen]
        if changed:
            time.sleep(SETTLE_S)
            for root in changed:
                self.seen[root] = snapshot(root)
        return changed


def forget_project_modules(root: Path) -> None:
    """Drop the modules imported from `root` (not fnserve's, not installed packages'), so the next import of the
    project reads its files again."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "fnserve" or name.startswith("fnserve.") or "site-packages" in file:
            continue
        if Path(file).resolve().is_relative_to(root):
            del sys.modules[name]

"""A user's mistake told in the user's terms: the frames of their own files (not importlib's, asyncio's, typer's or
fnserve's), each as `app.py:8`, and the message. Used by the CLI when a service fails to import, and by the replica
when an initializer raises; the whole traceback stays in `--debug` and in the replica's log."""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

import fnserve

_FNSERVE_DIR = Path(fnserve.__file__).resolve().parent
_LIBRARY_DIRS = tuple(
    Path(path).resolve()
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (path := sysconfig.get_paths().get(key))
)


def is_user_file(filename: str) -> bool:
    """A frame of the user's own code: not frozen or generated, not fnserve, not the standard library or an
    installed package."""
    if not filename or filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    if path.is_relative_to(_FNSERVE_DIR) or "site-packages" in path.parts or "_fnserve_runtime" in path.parts:
        return False
    return not any(path.is_relative_to(library) for library in _LIBRARY_DIRS)


def _shown(filename: str, root: Path | None) -> str:
    path = Path(filename)
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return filename


def user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of `exc`'s traceback that are the user's own code, outermost first."""
    return [frame for frame in traceback.extract_tb(exc.__traceback__) if is_user_file(frame.filename)]


def describe_user_error(exc: BaseException, *, root: Path | None = None) -> str:
    """`app.py:8: SyntaxError: expected ':'` and the line it points at, then where it was called from in the user's
    own files (innermost first); paths relative to `root` when under it."""
    message = f"{type(exc).__name__}: {exc}"
    located: list[tuple[str, int | None, str | None]] = []
    if isinstance(exc, SyntaxError) and exc.filename:
        message = f"{type(exc).__name__}: {exc.msg}"
        located.append((exc.filename, exc.lineno, exc.text))
    located += [(frame.filename, frame.lineno, frame.line) for frame in reversed(user_frames(exc))]
    if not located:
        return message
    filename, line_number, source = located[0]
    lines = [f"{_shown(filename, root)}:{line_number}: {message}"]
    if source and source.strip():
        lines.append(f"    {source.strip()}")
    lines += [f"  called from {_shown(f, root)}:{n}" for f, n, _ in located[1:]]
    return "\n".join(lines)


def user_traceback(exc: BaseException, *, root: Path | None = None) -> str:
    """A traceback of the user's frames only (as Python prints one, paths relative to `root`), then the error."""
    lines = ["Traceback (your code only; the replica's log has it all):"]
    for frame in user_frames(exc):
        lines.append(f'  File "{_shown(frame.filename, root)}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    lines += traceback.format_exception_only(exc)[-1:]
    return "\n".join(line.rstrip() for line in lines)

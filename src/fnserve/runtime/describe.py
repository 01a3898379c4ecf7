"""`describe`: import a project's service inside its own environment and print its spec as JSON, for a client that
cannot import it itself (its packages are not installed there): the server runs this, and answers with the spec.

Run through runtime/bootstrap.py (`python -I bootstrap.py OVERLAY --describe CODE_DIR ENTRYPOINT`), so the
service's imports resolve in its environment exactly as in its replicas. An import that fails prints its traceback,
which names the user's file and line, and exits with 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from fnserve.sdk.loader import load_entrypoint

DESCRIBE_FLAG = "--describe"


def user_frames(chunks: list[str]) -> list[str]:
    """A formatted traceback without fnserve's and importlib's own frames: the user's file and line stand out."""
    return [
        chunk
        for chunk in chunks
        if not (chunk.startswith('  File "') and ("/fnserve/" in chunk or "<frozen importlib" in chunk))
    ]


def main(argv: list[str]) -> None:
    code_dir, entrypoint = Path(argv[0]), argv[1]
    os.chdir(code_dir)
    try:
        service = load_entrypoint(code_dir, entrypoint)
        spec = service.spec.model_dump_json()
    except BaseException as exc:
        sys.stderr.write("".join(user_frames(traceback.format_exception(exc))))
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.write(spec)
    sys.stdout.flush()
    os._exit(0)

"""Like tables.py, but its module fails in its own environment too: the error names this file and line."""

from __future__ import annotations

import tabulate

import fnserve as fs

tabulate.no_such_function()


@fs.service(requirements=["tabulate==0.9.0"])
def broken() -> dict[str, object]:
    return {}

"""A service whose package (tabulate) is not installed where it is deployed from: `fnserve deploy` reads it on the
server, inside its environment."""

from __future__ import annotations

import tabulate

import fnserve as fs


@fs.service(requirements=["tabulate==0.9.0"])
def tables() -> dict[str, object]:
    return {}


@tables.endpoint("/render")
def render(rows: list[list[int]]) -> str:
    return str(tabulate.tabulate(rows, tablefmt="plain"))

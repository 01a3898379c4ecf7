"""A service that names no requirements: its project's requirements.txt gives them."""

from __future__ import annotations

import fnserve as fs


@fs.service
def from_project() -> dict[str, object]:
    return {}


@from_project.endpoint("/six", method="GET")
def six_version() -> str:
    import six

    return str(six.__version__)

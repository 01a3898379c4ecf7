"""Reading a .skops file's `schema.json` with the standard library: its types, versions and input schema.

A .skops file is a zip holding `schema.json` (the object tree: each node names its `__class__`, `__module__` and
`__loader__`, plain values are JSON text in `JsonNode`s, arrays are `.npy` members or JSON lists) beside `.npy`
files. The top node also records `protocol` and `_skops_version`; each scikit-learn estimator's state records the
`_sklearn_version` it was saved with. Nothing here imports skops: that is the replica's job (`loaders.py`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_MEMBER = "schema.json"
_MAX_SCHEMA_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class SkopsDocument:
    """The parsed `schema.json` of a .skops file."""

    root: dict[str, Any]

    @property
    def skops_version(self) -> str | None:
        version = self.root.get("_skops_version")
        return version if isinstance(version, str) else None

    @property
    def protocol(self) -> int | None:
        protocol = self.root.get("protocol")
        return protocol if isinstance(protocol, int) else None

    @property
    def estimator(self) -> tuple[str, str] | None:
        return node_class(self.root)

    def nodes(self) -> Iterator[dict[str, Any]]:
        """Every node of the tree (dicts with a `__class__`), depth first."""
        pending: list[Any] = [self.root]
        while pending:
            value = pending.pop()
            if isinstance(value, dict):
                if "__class__" in value:
                    yield value
                pending.extend(value.values())
            elif isinstance(value, list):
                pending.extend(value)

    def types(self) -> list[str]:
        """The fully qualified names of the classes and functions the file holds, builtins left out, sorted."""
        found = {f"{node['__module__']}.{node['__class__']}" for node in self.nodes() if _is_typed(node)}
        return sorted(name for name in found if not name.startswith("builtins."))

    def modules(self) -> list[str]:
        """The modules the file's objects come from, sorted."""
        return sorted({str(node["__module__"]) for node in self.nodes() if _is_typed(node)})

    def sklearn_version(self) -> str | None:
        """The `_sklearn_version` the outermost estimator that records one was saved with."""
        for state in _states_breadth_first(self.root):
            version = json_value(state.get("_sklearn_version"))
            if isinstance(version, str):
                return version
        return None


def read_skops(path: Path) -> SkopsDocument:
    """Parse the `schema.json` of the .skops file at `path`.

    Raises:
        ValueError: the file is not a zip with a JSON object as its `schema.json`.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(SCHEMA_MEMBER)
            if info.file_size > _MAX_SCHEMA_BYTES:
                raise ValueError(f"its {SCHEMA_MEMBER} is {info.file_size} bytes, more than a model's schema holds")
            document = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a skops file ({type(exc).__name__}: {exc})") from None
    if not isinstance(document, dict) or "__class__" not in document:
        raise ValueError(f"not a skops file: its {SCHEMA_MEMBER} has no top-level object")
    return SkopsDocument(document)


def node_class(node: Any) -> tuple[str, str] | None:
    """(module, class name) of a node, or None."""
    if isinstance(node, dict) and isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
        return node["__module__"], node["__class__"]
    return None


def node_state(node: Any) -> dict[str, Any]:
    """The attribute nodes of an `ObjectNode` (its state, a `DictNode`), by attribute name; {} for other nodes."""
    if not isinstance(node, dict) or node.get("__loader__") != "ObjectNode":
        return {}
    content = node.get("content")
    if isinstance(content, dict) and content.get("__loader__") == "DictNode":
        attributes = content.get("content")
        return attributes if isinstance(attributes, dict) else {}
    return {}


def json_value(node: Any) -> Any:
    """The plain value of a node kept as JSON (`JsonNode`, and lists, tuples and object arrays of them); else None."""
    if not isinstance(node, dict):
        return None
    loader = node.get("__loader__")
    content = node.get("content")
    if loader == "JsonNode" and isinstance(content, str):
        try:
            return json.loads(content)
        except json.JSONDecodeError:
            return None
    if loader in ("ListNode", "TupleNode") or (loader == "NdArrayNode" and node.get("type") == "json"):
        return [json_value(item) for item in content] if isinstance(content, list) else None
    return None


def _is_typed(node: dict[str, Any]) -> bool:
    return isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str)


def _states_breadth_first(root: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pending: list[Any] = [root]
    while pending:
        following: list[Any] = []
        for value in pending:
            if isinstance(value, dict):
                state = node_state(value)
                if state:
                    yield state
                following.extend(value.values())
            elif isinstance(value, list):
                following.extend(value)
        pending = following

"""A model's input schema, and turning request rows into the feature matrix it takes (pure: no numpy, no I/O).

A row is a list of numbers in feature order, or an object keyed by feature name. Anything else is refused with
`ValidationFailed` whose message states the expected shape, e.g. "each row needs 4 features (sepal_length,
sepal_width, petal_length, petal_width), got 3 in row 0".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fnserve.errors import ValidationFailed

_SHOWN_NAMES = 20  # feature names listed in a message; the rest are counted


@dataclass(frozen=True)
class ModelSchema:
    """What one row of input holds: its number of features and, when the model recorded them, their names.

    Example:
        >>> ModelSchema(n_features=2, feature_names=("height", "weight")).describe()
        '2 features (height, weight)'
    """

    n_features: int | None = None
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.feature_names is not None and self.n_features is None:
            object.__setattr__(self, "n_features", len(self.feature_names))

    def describe(self) -> str:
        """The expected row, in words: '4 features (a, b, c, d)', '4 features', 'the same number of features'."""
        if self.n_features is None:
            return "numbers, the same number in every row"
        text = f"{self.n_features} feature{'s' if self.n_features != 1 else ''}"
        if self.feature_names:
            shown = ", ".join(self.feature_names[:_SHOWN_NAMES])
            more = len(self.feature_names) - _SHOWN_NAMES
            text += f" ({shown}{f', and {more} more' if more > 0 else ''})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
        }

    def example_rows(self) -> list[Any]:
        """One example row of zeros, keyed by feature name when the names are known."""
        if self.feature_names:
            return [dict.fromkeys(self.feature_names, 0.0)]
        return [[0.0] * (self.n_features or 1)]

    def rows_json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the `rows` argument: a list of rows, each a list of numbers or an object of features."""
        as_list: dict[str, Any] = {"type": "array", "items": {"type": "number"}}
        if self.n_features is not None:
            as_list.update(minItems=self.n_features, maxItems=self.n_features)
        if self.feature_names:
            as_list["description"] = "values in this order: " + ", ".join(self.feature_names)
            as_object = {
                "type": "object",
                "properties": {name: {"type": "number"} for name in self.feature_names},
                "required": list(self.feature_names),
                "additionalProperties": False,
            }
            row: dict[str, Any] = {"anyOf": [as_list, as_object]}
        else:
            row = as_list
        return {
            "type": "array",
            "minItems": 1,
            "items": row,
            "description": f"one prediction per row; each row holds {self.describe()}",
        }


def rows_to_matrix(rows: Any, schema: ModelSchema) -> list[list[float | int]]:
    """Check request rows against `schema` and return them as a list of lists of numbers, in feature order.

    Raises:
        ValidationFailed: `rows` is not a non-empty list of rows of the expected shape; the message states the shape.

    Example:
        >>> schema = ModelSchema(feature_names=("a", "b"))
        >>> rows_to_matrix([[1, 2], {"b": 4, "a": 3}], schema)
        [[1, 2], [3, 4]]
    """
    if not isinstance(rows, list):
        raise _refuse("rows", f"expected a list of rows, got {_kind(rows)}; each row holds {schema.describe()}", schema)
    if not rows:
        raise _refuse("rows", f"no rows were sent; send at least one row of {schema.describe()}", schema)
    width = schema.n_features
    matrix: list[list[float | int]] = []
    for index, row in enumerate(rows):
        if isinstance(row, dict):
            values = _row_from_object(row, index, schema)
        elif isinstance(row, list):
            if width is None:
                width = len(row)
            if len(row) != width:
                message = (
                    f"each row needs {schema.describe()}, got {len(row)} in row {index}"
                    if schema.n_features is not None
                    else f"row {index} has {len(row)} values but the rows before it have {width}; every row needs the "
                    "same number of features"
                )
                raise _refuse(f"rows.{index}", message, schema)
            values = row
        else:
            keyed = " or an object keyed by feature name" if schema.feature_names else ""
            raise _refuse(
                f"rows.{index}",
                f"row {index} must be a list of numbers{keyed}, got {_kind(row)}; each row needs {schema.describe()}",
                schema,
            )
        for column, value in enumerate(values):
            if not _is_number(value):
                name = schema.feature_names[column] if schema.feature_names else None
                where = f"feature {name!r} (column {column})" if name else f"column {column}"
                raise _refuse(
                    f"rows.{index}",
                    f"row {index}, {where} must be a number, got {value!r:.50}; each row needs {schema.describe()}",
                    schema,
                )
        matrix.append(values)
    return matrix


def _row_from_object(row: dict[Any, Any], index: int, schema: ModelSchema) -> list[Any]:
    names = schema.feature_names
    if not names:
        raise _refuse(
            f"rows.{index}",
            f"row {index} is an object, but this model recorded no feature names; send each row as a list of "
            f"{schema.describe()}",
            schema,
        )
    missing = [name for name in names if name not in row]
    if missing:
        raise _refuse(
            f"rows.{index}",
            f"row {index} lacks {_names(missing)}; each row needs {schema.describe()}",
            schema,
        )
    if len(row) != len(names):
        known = set(names)
        unknown = [str(key) for key in row if key not in known]
        raise _refuse(
            f"rows.{index}",
            f"row {index} has unknown {_names(unknown)}; each row needs {schema.describe()}",
            schema,
        )
    return [row[name] for name in names]


def _is_number(value: Any) -> bool:
    # JSON true/false are not numbers, though Python's bool is an int; NaN and infinities cannot come from JSON.
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value)
    )


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    more = len(names) - _SHOWN_NAMES
    return f"feature{'s' if len(names) != 1 else ''} {shown}{f' and {more} more' if more > 0 else ''}"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _refuse(field: str, message: str, schema: ModelSchema) -> ValidationFailed:
    return ValidationFailed(message, details={"fields": [{"field": field, "message": message}], **schema.to_dict()})

"""Translating the JSON Schema pydantic makes of an endpoint's arguments into a pydantic_core schema.

The gateway never imports user code, so it has no type hints. It compiles the JSON Schema that pydantic made from
them (in the user's process, at decoration time) back into a core schema with the same lax coercions as the
replica's model. Whatever the schema cannot say exactly becomes "any value", so the result never refuses what the
replica accepts. A few checks are broadened past their plain form; `CompiledSchema.explain` words their refusals as
the plain form, and so the replica, would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic_core import ErrorDetails, SchemaValidator, ValidationError, core_schema
from pydantic_core.core_schema import CoreSchema

_DEFS = "#/$defs/"
# String formats whose pydantic type validates like this core schema, with the same lax coercions.
_FORMATS: dict[str, Callable[[], CoreSchema]] = {
    "date-time": core_schema.datetime_schema,
    "date": core_schema.date_schema,
    "time": core_schema.time_schema,
    "uuid": core_schema.uuid_schema,
}
# Formats of types that take only strings from JSON, but check more than a core schema can (URLs, e-mail, secrets).
_STRING_ONLY_FORMATS = frozenset(
    {"uri", "multi-host-uri", "email", "name-email", "password", "path", "file-path", "directory-path"}
)
# A check broadened past its plain form (below); a refusal is worded by running the plain form, as the replica would.
_EXPLAINED = "fnserve_explained"
_NOT_A_VALUE = object()


def compile_schema(schema: Mapping[str, Any], *, optional: Collection[str] = ()) -> CompiledSchema:
    """The pydantic_core schema for a JSON Schema of arguments, with its explainers; `optional` are never required."""
    compiler = _Compiler(schema)
    compiled = compiler.compile(optional=frozenset(optional))
    return CompiledSchema(compiled, explainers=tuple(compiler.explainers))


@dataclass(frozen=True)
class CompiledSchema:
    """A compiled arguments schema, with what it takes to word its refusals as the replica does.

    Attributes:
        schema: the core schema, for `SchemaValidator`.
        explainers: the plain form of each broadened check in `schema`, by the index its errors carry.
    """

    schema: CoreSchema
    explainers: tuple[SchemaValidator, ...] = ()

    def explain(self, error: ErrorDetails) -> ErrorDetails:
        """A broadened check's error as the replica words it: the error of its plain check; other errors as they are."""
        if error["type"] != _EXPLAINED:
            return error
        index = cast(int, error.get("ctx", {})["plain"])
        try:
            self.explainers[index].validate_python(error["input"])
        except ValidationError as exc:
            return {**exc.errors(include_url=False)[0], "loc": error["loc"]}
        return error


class _Compiler:
    """JSON Schema (the subset pydantic emits) → core schema; one instance per schema, for its `$defs`."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.root = schema
        defs = schema.get("$defs")
        self.defs: Mapping[str, Any] = defs if isinstance(defs, dict) else {}
        self.definitions: dict[str, CoreSchema] = {}
        self.explainers: list[SchemaValidator] = []

    def compile(self, *, optional: frozenset[str]) -> CoreSchema:
        root = self.root
        if isinstance(root.get("$ref"), str):
            root = self._definition(root["$ref"]) or {}
        converted = (
            self._object(root, optional=optional)
            if root.get("type") == "object"
            else core_schema.dict_schema()  # not the object pydantic makes: any object; the replica sees the rest
        )
        if not self.definitions:
            return converted
        return core_schema.definitions_schema(converted, list(self.definitions.values()))

    def convert(self, schema: Any) -> CoreSchema:
        if not isinstance(schema, dict):
            return core_schema.any_schema()  # `true`, or not a schema at all
        if "$ref" in schema:
            return self._reference(schema["$ref"])
        if "allOf" in schema:
            members = schema["allOf"]
            return self.convert(members[0]) if isinstance(members, list) and len(members) == 1 else _any()
        if "oneOf" in schema:  # a discriminated union
            return self._tagged_union(schema["oneOf"], schema.get("discriminator")) or self._union(schema["oneOf"])
        if "anyOf" in schema:
            return self._union(schema["anyOf"])
        if "enum" in schema or "const" in schema:
            return self._literal(schema["enum"] if "enum" in schema else [schema["const"]], schema.get("type"))
        kind = schema.get("type")
        if isinstance(kind, list):
            return self._union([{**schema, "type": member} for member in kind])
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            whole = {key: _int_or_none(schema.get(name)) for name, key in _BOUNDS}
            return core_schema.int_schema(**_given(whole), **_given({"multiple_of": _positive_int(schema)}))
        if kind == "number":
            real = {key: _float_or_none(schema.get(name)) for name, key in _BOUNDS}
            return core_schema.float_schema(**_given(real), **_given({"multiple_of": _positive_float(schema)}))
        if kind == "boolean":
            return core_schema.bool_schema()
        if kind == "null":
            return core_schema.none_schema()
        if kind == "array":
            return self._array(schema)
        if kind == "object":
            return self._object(schema, optional=frozenset())
        return _any()

    def _definition(self, ref: str) -> dict[str, Any] | None:
        if not ref.startswith(_DEFS):
            return None
        name = ref[len(_DEFS) :].replace("~1", "/").replace("~0", "~")
        found = self.defs.get(name)
        return found if isinstance(found, dict) else None

    def _reference(self, ref: Any) -> CoreSchema:
        target = self._definition(ref) if isinstance(ref, str) else None
        if target is None:
            return _any()
        if ref not in self.definitions:
            self.definitions[ref] = core_schema.any_schema(ref=ref)  # placeholder: a recursive model refers to itself
            converted = self.convert(target)
            if target.get("type") == "array" and "prefixItems" in target:
                # A named tuple: it also takes an object of its fields.
                converted = core_schema.union_schema([converted, core_schema.dict_schema()])
            self.definitions[ref] = cast(CoreSchema, {**converted, "ref": ref})
        return core_schema.definition_reference_schema(ref)

    def _union(self, members: Any) -> CoreSchema:
        if not isinstance(members, list) or not members:
            return _any()
        nullable = False
        choices: list[CoreSchema | tuple[CoreSchema, str]] = []
        decimal_like = _is_plain_string_union(members)
        for member in members:
            if isinstance(member, dict) and member.get("type") == "null" and len(member.keys() - _ANNOTATIONS) == 1:
                nullable = True
                continue
            if decimal_like and isinstance(member, dict) and member.get("type") == "number":
                # number | string is also how Decimal looks; its bounds compare decimals, not floats, so leave them out
                member = {"type": "number"}
            converted = self.convert(member)
            if converted["type"] == "any":
                return converted
            label = _label(member, self.defs)
            choices.append((converted, label) if label else converted)
        if not choices:
            return core_schema.none_schema()
        inner = choices[0] if len(choices) == 1 else core_schema.union_schema(choices)
        if isinstance(inner, tuple):
            inner = inner[0]
        return core_schema.nullable_schema(inner) if nullable else inner

    def _tagged_union(self, members: Any, discriminator: Any) -> CoreSchema | None:
        """The replica's tagged union, when every tag is a string that its member's discriminator field holds."""
        if not isinstance(discriminator, dict) or not isinstance(members, list):
            return None
        field, mapping = discriminator.get("propertyName"), discriminator.get("mapping")
        if not isinstance(field, str) or not isinstance(mapping, dict):
            return None
        refs = {member.get("$ref") for member in members if isinstance(member, dict)}
        if len(refs) != len(members) or refs != set(mapping.values()):
            return None
        choices: dict[Hashable, CoreSchema] = {}
        for tag, ref in mapping.items():
            target = self._definition(ref) if isinstance(ref, str) else None
            properties = target.get("properties") if target else None
            tag_schema = properties.get(field) if isinstance(properties, dict) else None
            if not isinstance(tag_schema, dict):
                return None
            tags = [tag_schema["const"]] if "const" in tag_schema else tag_schema.get("enum")
            if not isinstance(tags, list) or tag not in tags or not all(isinstance(value, str) for value in tags):
                return None  # an int or enum tag: the mapping's string keys would not find it
            choices[tag] = self._reference(ref)
        return core_schema.tagged_union_schema(choices, field)

    def _literal(self, values: Any, kind: Any) -> CoreSchema:
        if not isinstance(values, list) or not values or not all(_is_scalar(value) for value in values):
            return _any()
        literal = core_schema.literal_schema(values)
        numbers = [value for value in values if not isinstance(value, bool) and isinstance(value, int | float)]
        if len(numbers) != len(values) or kind not in ("integer", "number"):
            return literal
        # An IntEnum (or a float-mixin enum) coerces like its base type: "1" is IntEnum member 1.
        coerce = core_schema.int_schema() if kind == "integer" else core_schema.float_schema()
        return core_schema.union_schema(
            [core_schema.chain_schema([coerce, literal])],
            auto_collapse=False,
            custom_error_type="literal_error",  # worded as the replica words it: "Input should be 1 or 2"
            custom_error_context={"expected": _expected(literal)},
        )

    def _string(self, schema: dict[str, Any]) -> CoreSchema:
        text_format = schema.get("format")
        if isinstance(text_format, str):
            if text_format == "duration":
                # Python's bool is an int, so the replica's timedelta takes true and false (seconds); JSON's does not.
                duration = core_schema.timedelta_schema()
                return self._broadened(duration, [duration, core_schema.bool_schema(strict=True)])
            if text_format in _FORMATS:
                return _FORMATS[text_format]()
            if text_format.startswith("uuid") and text_format[4:].isdigit():
                return core_schema.uuid_schema()  # UUID1, UUID4...: any version passes here
            if text_format == "binary":
                return core_schema.bytes_schema(**_given(_lengths(schema)))
            if text_format in _STRING_ONLY_FORMATS:
                return core_schema.str_schema()
            return _any()  # e.g. ipv4: IPv4Address also takes an int
        if "contentMediaType" in schema or "contentSchema" in schema:
            return core_schema.str_schema()  # Json[...]: a string of JSON, parsed and checked by the replica
        constraints: dict[str, Any] = _given({**_lengths(schema), "pattern": _pattern(schema.get("pattern"))})
        if not constraints:
            return core_schema.str_schema()
        plain = core_schema.str_schema(**constraints)
        # A str field may strip whitespace before it checks length and pattern (`str_strip_whitespace`), and the
        # schema does not say so: a string passes if it passes either way.
        return self._broadened(plain, [plain, core_schema.str_schema(**constraints, strip_whitespace=True)])

    def _broadened(self, plain: CoreSchema, choices: list[CoreSchema]) -> CoreSchema:
        """Passes what any choice passes; refused, it is worded as `plain` words it."""
        self.explainers.append(SchemaValidator(plain))
        return core_schema.union_schema(
            list(choices),
            mode="left_to_right",
            custom_error_type=_EXPLAINED,
            custom_error_message="Input should be valid",
            custom_error_context={"plain": len(self.explainers) - 1},
        )

    def _array(self, schema: dict[str, Any]) -> CoreSchema:
        lengths = {"min_length": _length(schema.get("minItems")), "max_length": _length(schema.get("maxItems"))}
        if schema.get("uniqueItems") is True:
            lengths["max_length"] = None  # a set drops duplicates before it counts them
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(prefix, list):
            return self._tuple(prefix, items, lengths) or core_schema.list_schema(**_given(lengths))
        return core_schema.list_schema(self.convert(items) if isinstance(items, dict) else None, **_given(lengths))

    def _tuple(self, prefix: list[Any], items: Any, lengths: dict[str, int | None]) -> CoreSchema | None:
        if lengths["min_length"] is None or lengths["min_length"] < len(prefix):
            return None  # trailing items with defaults (a NamedTuple)
        positional = [self.convert(member) for member in prefix]
        if isinstance(items, dict) or (items is None and lengths["max_length"] != len(prefix)):
            rest = self.convert(items) if isinstance(items, dict) else _any()
            return core_schema.tuple_schema(
                [*positional, rest], variadic_item_index=len(prefix), **_given({"max_length": lengths["max_length"]})
            )
        fixed = core_schema.tuple_schema(positional)
        # pydantic writes tuple[int, *tuple[str, ...]] as prefixItems [int, array of str]: read an array member
        # as that unpacked form too.
        unpacked = [
            core_schema.tuple_schema(
                [*positional[:index], self.convert(member["items"]), *positional[index + 1 :]],
                variadic_item_index=index,
            )
            for index, member in enumerate(prefix)
            if isinstance(member, dict) and member.get("type") == "array" and isinstance(member.get("items"), dict)
        ]
        return core_schema.union_schema([fixed, *unpacked]) if unpacked else fixed

    def _object(self, schema: Mapping[str, Any], *, optional: frozenset[str]) -> CoreSchema:
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if not isinstance(properties, dict) and extra is not False:
            keys = schema.get("propertyNames")
            if isinstance(keys, dict) and "type" not in keys and not keys.keys() & {"$ref", "enum", "const", "anyOf"}:
                keys = {**keys, "type": "string"}  # object keys are strings
            values = extra if isinstance(extra, dict) else None
            if values is None and isinstance(schema.get("patternProperties"), dict):
                patterns = list(schema["patternProperties"].values())
                values = patterns[0] if len(patterns) == 1 else None  # dict[constr(pattern=...), V]; keys unchecked
            return core_schema.dict_schema(
                self.convert(keys) if isinstance(keys, dict) else None,
                self.convert(values) if isinstance(values, dict) else None,
                **_given({"min_length": _length(schema.get("minProperties"))}),
                **_given({"max_length": _length(schema.get("maxProperties"))}),
            )
        required = schema.get("required")
        required_names = set(required) if isinstance(required, list) else set()
        fields = {
            name: core_schema.typed_dict_field(
                self.convert(member),
                required=name in required_names
                and name not in optional
                and not (isinstance(member, dict) and "default" in member),
            )
            for name, member in (properties or {}).items()
        }
        if extra is False:
            return core_schema.typed_dict_schema(fields, extra_behavior="forbid")
        if isinstance(extra, dict) and extra:
            return core_schema.typed_dict_schema(fields, extra_behavior="allow", extras_schema=self.convert(extra))
        # Unknown keys pass: a nested model ignores them by default (its schema then says nothing), **kwargs takes them.
        return core_schema.typed_dict_schema(fields, extra_behavior="ignore")


_BOUNDS = (("minimum", "ge"), ("maximum", "le"), ("exclusiveMinimum", "gt"), ("exclusiveMaximum", "lt"))
# Keywords that only describe; a schema of `type: null` and these is None.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"})


def _any() -> CoreSchema:
    return core_schema.any_schema()


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_or_none(value: Any) -> int | None:
    if not _is_number(value):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # a fractional bound on an int: leave it to the replica
    return int(value)


def _float_or_none(value: Any) -> float | None:
    if not _is_number(value):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _positive_int(schema: dict[str, Any]) -> int | None:
    value = _int_or_none(schema.get("multipleOf"))
    return value if value is not None and value > 0 else None


def _positive_float(schema: dict[str, Any]) -> float | None:
    value = _float_or_none(schema.get("multipleOf"))
    return value if value is not None and value > 0 else None


def _length(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _lengths(schema: dict[str, Any]) -> dict[str, int | None]:
    return {"min_length": _length(schema.get("minLength")), "max_length": _length(schema.get("maxLength"))}


def _pattern(value: Any) -> str | None:
    """The pattern, when pydantic_core compiles it (look-arounds need regex_engine="python-re": left to the replica)."""
    if not isinstance(value, str):
        return None
    try:
        SchemaValidator(core_schema.str_schema(pattern=value))
    except Exception:
        return None
    return value


def _expected(literal: CoreSchema) -> str:
    """How pydantic lists a literal's values in its error message: "1, 2 or 3"."""
    try:
        SchemaValidator(literal).validate_python(_NOT_A_VALUE)
    except ValidationError as exc:
        return str(exc.errors()[0].get("ctx", {}).get("expected", ""))
    return ""


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _is_plain_string_union(members: list[Any]) -> bool:
    return any(
        isinstance(member, dict) and member.get("type") == "string" and not member.keys() - _ANNOTATIONS - {"type"}
        for member in members
    )


def _label(member: Any, defs: Mapping[str, Any]) -> str | None:
    """A union member's name in error locations, as pydantic names a model member: its class name."""
    if not isinstance(member, dict) or not isinstance(member.get("$ref"), str):
        return None
    target = defs.get(member["$ref"].removeprefix(_DEFS))
    if not isinstance(target, dict) or target.get("type") != "object":
        return None
    title = target.get("title")
    return title if isinstance(title, str) else None

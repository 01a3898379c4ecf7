"""Argument validation in the gateway, compiled from the JSON Schema a spec carries: it never refuses a call the
replica's pydantic model accepts, and words its refusals as the replica does."""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple

import hypothesis
import orjson
import pytest
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from typing_extensions import TypedDict

from fnserve.errors import InvalidRequest, ValidationFailed
from fnserve.gateway.schema_compiler import compile_schema
from fnserve.gateway.validation import ArgumentsValidator
from fnserve.sdk.introspect import arguments_model, arguments_schema, describe_parameters
from fnserve.spec import EndpointSpec

# --- The types endpoints take ---------------------------------------------------------------------------------------


class Color(enum.Enum):
    red = "red"
    green = "green"


class Level(enum.IntEnum):
    low = 1
    high = 2


class Code(enum.Enum):
    ok = 200
    missing = 404


class Ratio(float, enum.Enum):
    half = 0.5
    whole = 1


class Point(BaseModel):
    x: int
    y: float = 0.0


class StrictPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int
    label: str


class Tree(BaseModel):
    value: int
    children: list[Tree] = []


@dataclasses.dataclass
class Size:
    width: int
    height: int = 1


class Movie(TypedDict):
    title: str
    year: int


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool = True


class Pair(NamedTuple):
    left: int
    right: str = "r"


class Opaque:
    """A class pydantic has no JSON Schema for: `{}`, any value."""


# --- Endpoints (the functions' bodies never run) ----------------------------------------------------------------------


def scalars(number: int, ratio: float, message: str, flag: bool = False) -> None: ...


def optionals(count: int | None = None, name: str | None = None) -> None: ...


def sequences(items: list[int], pair: tuple[int, str], rest: tuple[int, ...] = ()) -> None: ...


def mappings(weights: dict[str, float], colors: dict[Color, int] | None = None) -> None: ...


def literals(mode: Literal["fast", "slow"], on: Literal[True] = True, maybe: Literal["a", None] = None) -> None: ...


def enums(color: Color, level: Level = Level.low) -> None: ...


def numeric_choices(level: Literal[1, 2, 3], code: Code = Code.ok, ratio: Ratio = Ratio.half) -> None: ...


def nested(point: Point, strict: StrictPoint | None = None) -> None: ...


def recursive(tree: Tree) -> None: ...


def dataclasses_(size: Size) -> None: ...


def typed_dicts(movie: Movie) -> None: ...


def temporal(at: datetime, day: date = date(2020, 1, 1), span: timedelta = timedelta(0)) -> None: ...


def identifiers(id: uuid.UUID) -> None: ...


def constrained(
    n: Annotated[int, Field(ge=0, le=10)],
    ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5,
    step: Annotated[int, Field(multiple_of=5)] = 0,
) -> None: ...


def strings(
    code: Annotated[str, Field(min_length=2, max_length=5, pattern="^[a-z]+$")],
    trimmed: Annotated[str, StringConstraints(strip_whitespace=True, max_length=3)] = "a",
    lower: Annotated[str, StringConstraints(to_lower=True, pattern="^[a-z]+$")] = "a",
) -> None: ...


def sets(tags: set[int], names: Annotated[frozenset[str], Field(max_length=2)] = frozenset()) -> None: ...


def binary(data: bytes) -> None: ...


def money(amount: Decimal, fee: Annotated[Decimal, Field(ge=0)] = Decimal(0)) -> None: ...


def opaque(thing: Opaque | None = None) -> None: ...


def unions(
    value: int | str | list[int], pet: Annotated[Cat | Dog, Field(discriminator="kind")] | None = None
) -> None: ...


def named_tuples(pair: Pair) -> None: ...


def var_kwargs(x: int, **options: Any) -> None: ...


def anything(value: Any, other: object = None) -> None: ...


@dataclasses.dataclass(frozen=True)
class Case:
    function: Callable[..., None]
    valid: dict[str, Any]  # arguments the replica takes: each example changes one of them, or starts afresh
    exact: bool = True  # the gateway's schema is the replica's; else the gateway may take more (never less)


CASES = [
    Case(scalars, {"number": 1, "ratio": 0.5, "message": "hi"}),
    Case(optionals, {}),
    Case(sequences, {"items": [1], "pair": [1, "a"]}),
    Case(mappings, {"weights": {"a": 1.5}}),
    Case(literals, {"mode": "fast"}),
    Case(enums, {"color": "red"}),
    Case(numeric_choices, {"level": 1}, exact=False),  # as for an IntEnum, "2" passes for 2
    Case(nested, {"point": {"x": 1}}),
    Case(recursive, {"tree": {"value": 1, "children": [{"value": 2}]}}),
    Case(dataclasses_, {"size": {"width": 1}}),
    Case(typed_dicts, {"movie": {"title": "Alien", "year": 1979}}),
    Case(temporal, {"at": "2020-01-01T00:00:00Z"}),
    Case(identifiers, {"id": "123e4567-e89b-12d3-a456-426614174000"}),
    Case(constrained, {"n": 5}),
    Case(strings, {"code": "abc"}, exact=False),  # a constrained string passes if it would pass stripped
    Case(sets, {"tags": [1, 2]}, exact=False),  # max_length counts a set after it drops duplicates: not checked
    Case(binary, {"data": "abc"}),
    Case(money, {"amount": "1.5"}, exact=False),  # Decimal reads as number | string
    Case(opaque, {}, exact=False),  # the replica takes only an Opaque instance, which JSON cannot hold
    Case(unions, {"value": 1, "pet": {"kind": "cat"}}),
    Case(named_tuples, {"pair": [1, "a"]}, exact=False),  # a NamedTuple also takes an object
    Case(var_kwargs, {"x": 1, "more": [1]}),
    Case(anything, {"value": None}),
]


# --- Both sides, made by fnserve.sdk.introspect as for a deployed endpoint -------------------------------------------


@functools.cache
def endpoint_spec(function: Callable[..., None]) -> EndpointSpec:
    parameters, var_kwargs = describe_parameters(function, skip_first=False)
    return EndpointSpec(
        path=f"/{function.__name__}", function_name=function.__name__, parameters=parameters, var_kwargs=var_kwargs
    )


@functools.cache
def replica_model(function: Callable[..., None]) -> type[BaseModel]:
    model, _ = arguments_model(function, endpoint_spec(function))
    return model


def spec_schema(function: Callable[..., None]) -> dict[str, Any]:
    """The arguments' JSON Schema as the gateway receives it: made in the user's process, sent as JSON."""
    schema = arguments_schema(function, endpoint_spec(function))
    assert schema is not None
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(schema))
    return loaded


@functools.cache
def gateway_validator(function: Callable[..., None]) -> ArgumentsValidator:
    return ArgumentsValidator(spec_schema(function), route=f"POST /{function.__name__}")


def replica_refusal(function: Callable[..., None], values: dict[str, Any]) -> ValidationFailed | None:
    try:
        replica_model(function).model_validate(values)
    except ValidationError as exc:
        return ValidationFailed.for_arguments(f"POST /{function.__name__}", exc.errors())
    return None


# What the schema cannot tell apart, the gateway words the plain way: a model, a dataclass, a TypedDict and a tagged
# union all want "a valid dictionary"; a tuple[int, ...], a set and a list all want "a valid list".
_DICT = "Input should be a valid dictionary"
_CONTAINER_WORDING = [
    (
        re.compile(r"Input should be a (valid )?dictionary or (an )?(instance of \w+|object to extract fields from)"),
        _DICT,
    ),
    (re.compile(r"Input should be a valid (tuple|set|frozenset)"), "Input should be a valid list"),
    (re.compile(r"Unexpected keyword argument \(got .*\)"), "is not a parameter of this endpoint"),  # a dataclass's
]


def wording(exc: ValidationFailed) -> list[dict[str, str]]:
    assert exc.details is not None
    fields: list[dict[str, str]] = exc.details["fields"]
    for pattern, plain in _CONTAINER_WORDING:
        fields = [{**field, "message": pattern.sub(plain, field["message"])} for field in fields]
    return fields


def body_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def gateway_refusal(check: Callable[[], None]) -> ValidationFailed | None:
    try:
        check()
    except ValidationFailed as exc:
        return exc
    return None


# --- Values to try: any JSON, and values near the types above -------------------------------------------------------

NEAR_VALUES = ["42", "3.0", " 7 ", "1_000", "1e3", "inf", "nan", "", "true", "yes", "null", 3.0, 3.5, 1e10]

scalars_strategy = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(NEAR_VALUES),
)
json_values = st.recursive(
    scalars_strategy,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=3), children, max_size=4),
    ),
    max_leaves=6,
)


def spellings(value: Any) -> st.SearchStrategy[Any]:
    """The value, or another spelling of it that lax validation may or may not take."""
    variants: list[Any]
    if isinstance(value, bool):
        variants = [int(value), str(value).lower(), "yes" if value else "off"]
    elif isinstance(value, int):
        variants = [float(value), str(value), f" {value} ", value + 0.5]
    elif isinstance(value, float):
        variants = [str(value), int(value), value + 0.5]
    elif isinstance(value, str):
        variants = [f" {value} ", value.upper(), value + "\n", 7]
    else:
        variants = ["null", 0]
    return st.one_of(st.just(value), st.just(value), st.just(value), st.sampled_from(variants))


_FORMATS: dict[str, st.SearchStrategy[Any]] = {
    "date-time": st.datetimes().map(datetime.isoformat) | st.integers(-(10**12), 10**12),
    "date": st.dates().map(date.isoformat) | st.sampled_from([86400, 1, "2020-01-01T00:00:00", "2020-02-30"]),
    "time": st.times().map(lambda t: t.isoformat()) | st.sampled_from([3600, 86400, "25:00"]),
    "duration": st.sampled_from(["PT1S", "P1DT2H", "1:00:00", "10", 10, 1.5, True, False, "P"]),
    "uuid": st.uuids().map(str) | st.uuids().map(lambda u: u.hex) | st.just("123"),
    "binary": st.text(max_size=6),
}


def near(schema: Any, defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values near what a JSON Schema describes: valid ones, lax spellings of them, and values just outside."""
    if not isinstance(schema, dict) or depth > 3:
        return json_values
    if "$ref" in schema:
        return near(defs[schema["$ref"].removeprefix("#/$defs/")], defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return st.one_of([near(member, defs, depth) for member in schema[key]])
    if "enum" in schema or "const" in schema:
        return st.sampled_from(schema.get("enum", [schema.get("const")])).flatmap(spellings)
    kind = schema.get("type")
    if kind in ("integer", "number"):
        low = int(next((schema[key] for key in ("minimum", "exclusiveMinimum") if key in schema), -1000)) - 2
        high = int(next((schema[key] for key in ("maximum", "exclusiveMaximum") if key in schema), 1000)) + 2
        floats = st.floats(min_value=low, max_value=high) if kind == "number" else st.nothing()
        return (st.integers(min_value=low, max_value=high) | floats).flatmap(spellings)
    if kind == "boolean":
        return st.booleans().flatmap(spellings) | st.sampled_from([2, "2", "maybe"])
    if kind == "null":
        return st.none()
    if kind == "string":
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]] | json_values
        text = st.text(max_size=schema.get("maxLength", 5) + 2)
        if "pattern" in schema:
            text |= st.from_regex(str(schema["pattern"]), fullmatch=True)
        return text.flatmap(spellings)
    if kind == "array":
        if "prefixItems" in schema:
            fixed = st.tuples(*(near(member, defs, depth) for member in schema["prefixItems"])).map(list)
            return fixed.flatmap(lambda items: st.sampled_from([items, items[:-1], [*items, items[0]]]))
        return st.lists(near(schema.get("items"), defs, depth), max_size=schema.get("maxItems", 3) + 1)
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        if properties or schema.get("additionalProperties") is False:
            required = set(schema.get("required", []))
            values = {name: near(member, defs, depth) for name, member in properties.items()}
            return st.fixed_dictionaries(
                {name: values[name] for name in values if name in required},
                optional={name: values[name] for name in values if name not in required},
            )
        names = near(schema.get("propertyNames"), defs, depth).filter(lambda name: isinstance(name, str))
        return st.dictionaries(names | st.text(max_size=3), near(schema.get("additionalProperties"), defs, depth))
    return json_values


def arguments(case: Case) -> st.SearchStrategy[dict[str, Any]]:
    """Valid arguments with one of them changed, left out or joined by an unknown one; arguments near the parameters;
    any JSON object."""
    schema = spec_schema(case.function)
    defs, properties = schema.get("$defs", {}), schema["properties"]
    one_changed = st.sampled_from(list(properties)).flatmap(
        lambda name: (near(properties[name], defs) | json_values).map(lambda value: {**case.valid, name: value})
    )
    one_left_out = st.sampled_from([*case.valid, "unknown"]).map(
        lambda name: {key: value for key, value in case.valid.items() if key != name}
    )
    return st.one_of(
        one_changed,
        one_changed,
        one_changed,
        one_left_out,
        json_values.map(lambda value: {**case.valid, "unknown": value}),
        near(schema, defs),
        st.dictionaries(st.sampled_from([*properties, "unknown"]), json_values, max_size=3),
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.function.__name__)
def test_gateway_refuses_only_what_the_replica_refuses(case: Case) -> None:
    """1. Arguments near each parameter's type (valid ones, lax spellings, values just outside) and arbitrary JSON go
       through the gateway's validator (the body as bytes, the same values parsed, and as query strings) and the
       replica's model.
    2. The gateway never refuses what the replica takes. Where its schema is exact, it takes what the replica takes,
       and refuses in the same words."""
    validator = gateway_validator(case.function)
    assert replica_refusal(case.function, case.valid) is None

    @hypothesis.settings(max_examples=100, deadline=None, derandomize=True, database=None)
    @hypothesis.given(values=arguments(case))
    def check(values: dict[str, Any]) -> None:
        body = orjson.dumps(values)
        parsed = orjson.loads(body)  # the replica parses with orjson too
        query = {key: value if isinstance(value, str) else body_text(value) for key, value in parsed.items()}
        replica = replica_refusal(case.function, parsed)
        replica_from_query = replica_refusal(case.function, query)
        refusals = [
            (gateway_refusal(lambda: validator.validate_json(body)), replica),
            (gateway_refusal(lambda: validator.validate(parsed)), replica),
            (gateway_refusal(lambda: validator.validate_request(b"", {}, query)), replica_from_query),
        ]
        for gateway, expected in refusals:
            if gateway is not None:
                assert expected is not None, f"the gateway refused what the replica takes: {gateway.message}"
            if case.exact:
                assert (gateway is None) == (expected is None), f"the replica refuses: {expected and expected.message}"
                if gateway is not None and expected is not None:
                    assert wording(gateway) == wording(expected)

    check()


# --- Refusals and their wording ---------------------------------------------------------------------------------------


def validator_for(function: Callable[..., None], optional: tuple[str, ...] = ()) -> ArgumentsValidator:
    return ArgumentsValidator(spec_schema(function), route="POST /f", optional=optional)


def fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[dict[str, str]]:
    assert exc.value.details is not None
    found: list[dict[str, str]] = exc.value.details["fields"]
    return found


def test_validate_json_accepts_lax_values_like_the_replica() -> None:
    validator = validator_for(scalars)
    validator.validate_json(b'{"number": "42", "ratio": 1, "message": "hi", "flag": "yes"}')
    validator.validate_json(b'{"number": 3.0, "ratio": "0.5", "message": ""}')


def test_validate_json_names_a_missing_required_parameter() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validator_for(scalars).validate_json(b'{"number": 1, "ratio": 0.5}')
    assert exc.value.http_status == 422
    assert fields(exc) == [{"field": "message", "message": "is required"}]
    assert exc.value.message == "Invalid arguments for POST /f: `message` is required"


def test_optional_parameter_is_not_required_even_when_the_schema_says_so() -> None:
    validator = validator_for(scalars, optional=("message",))
    validator.validate_json(b'{"number": 1, "ratio": 0.5}')
    with pytest.raises(ValidationFailed):
        validator.validate_json(b'{"number": 1, "ratio": 0.5, "message": 7}')  # still checked when given


def test_validate_json_names_the_field_of_a_wrong_type() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validator_for(scalars).validate_json(b'{"number": "seven", "ratio": 0.5, "message": 3}')
    assert fields(exc) == [
        {
            "field": "number",
            "message": "Input should be a valid integer, unable to parse string as an integer (got 'seven')",
        },
        {"field": "message", "message": "Input should be a valid string (got 3)"},
    ]


def test_validate_json_names_nested_locations_by_parameter_name() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validator_for(sequences).validate_json(b'{"items": [1, "x"], "pair": [1, 2]}')
    assert [field["field"] for field in fields(exc)] == ["items.1", "pair.1"]
    with pytest.raises(ValidationFailed) as exc:
        validator_for(nested).validate_json(b'{"point": {"y": 1}, "strict": {"x": 1, "label": "a", "z": 0}}')
    assert fields(exc) == [
        {"field": "point.x", "message": "is required"},
        {"field": "strict.z", "message": "is not a parameter of this endpoint"},
    ]


def test_nested_model_without_forbid_accepts_unknown_keys() -> None:
    validator_for(nested).validate_json(b'{"point": {"x": 1, "extra": true}}')


def test_unknown_parameter_is_refused_unless_the_function_takes_kwargs() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validator_for(optionals).validate_json(b'{"count": 1, "colour": "red"}')
    assert fields(exc) == [{"field": "colour", "message": "is not a parameter of this endpoint"}]
    validator_for(var_kwargs).validate_json(b'{"x": 1, "colour": "red", "size": [1, 2]}')


@pytest.mark.parametrize("body", [b"{", b'{"x": 1,}', b"nope", b"{'x': 1}", b"   "])
def test_malformed_json_is_an_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as exc:
        validator_for(var_kwargs).validate_json(body)
    assert type(exc.value) is InvalidRequest
    assert exc.value.http_status == 400
    assert exc.value.message.startswith("request body is not valid JSON (")


@pytest.mark.parametrize(
    ("body", "kind"), [(b"[1]", "list"), (b"1", "int"), (b'"x"', "str"), (b"null", "NoneType"), (b"true", "bool")]
)
def test_a_body_that_is_not_an_object_is_an_invalid_request(body: bytes, kind: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        validator_for(scalars).validate_json(body)
    assert type(exc.value) is InvalidRequest
    assert exc.value.message == (f'request body must be a JSON object of arguments, got {kind}; for example {{"x": 1}}')


def test_empty_body_passes_when_nothing_is_required() -> None:
    validator_for(optionals).validate_json(b"")
    with pytest.raises(ValidationFailed) as exc:
        validator_for(var_kwargs).validate_json(b"")
    assert fields(exc) == [{"field": "x", "message": "is required"}]


def test_json_nested_deeper_than_pydantic_parses_is_read_as_the_replica_reads_it() -> None:
    validator_for(anything).validate_json(b'{"value": ' + b"[" * 500 + b"]" * 500 + b"}")


def test_validate_request_merges_query_body_and_path_like_the_replica() -> None:
    validator = validator_for(scalars)
    # The path's value replaces the body's, as in the replica; query values are strings.
    validator.validate_request(b'{"number": "x", "message": "hi"}', {"number": "7"}, {"ratio": "0.5"})
    with pytest.raises(ValidationFailed) as exc:
        validator.validate_request(b"", {"number": "7"}, {"ratio": "half"})
    assert [field["field"] for field in fields(exc)] == ["ratio", "message"]
    with pytest.raises(InvalidRequest):
        validator.validate_request(b"[]", {"number": "7"}, {})


def test_constrained_string_refusal_is_worded_like_the_replica() -> None:
    with pytest.raises(ValidationFailed) as exc:
        validator_for(strings).validate_json(b'{"code": "abcdefg"}')
    assert fields(exc) == [{"field": "code", "message": "String should have at most 5 characters (got 'abcdefg')"}]
    # The schema does not show that `trimmed` strips whitespace before it counts.
    validator_for(strings).validate_json(b'{"code": "abc", "trimmed": "  ab  "}')


def test_enum_refusal_is_worded_like_the_replica() -> None:
    body = b'{"color": "blue", "level": 7}'
    with pytest.raises(ValidationFailed) as exc:
        validator_for(enums).validate_json(body)
    assert exc.value.details == replica_refusal(enums, orjson.loads(body)).details  # type: ignore[union-attr]
    validator_for(enums).validate_json(b'{"color": "red", "level": "2"}')  # an IntEnum takes "2"


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "string", "format": "ipv4"}, 3232235521),  # IPv4Address takes an int
        ({"type": "string", "format": "something-new"}, [1]),
        ({"allOf": [{"type": "integer"}, {"minimum": 3}]}, "x"),
        ({"type": "string", "pattern": "^(?!x)"}, "xyz"),  # look-around: regex_engine="python-re" in the replica
        ({"$ref": "#/$defs/Missing"}, {}),
        ({"enum": [[1, 2], [3]]}, "x"),
        ({"type": "integer", "minimum": 0.5}, 0),
    ],
)
def test_what_the_converter_cannot_express_passes(schema: dict[str, Any], value: Any) -> None:
    arguments_schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    ArgumentsValidator(arguments_schema, route="POST /f").validate({"a": value})


def test_recursive_model_validates_at_any_depth() -> None:
    validator = validator_for(recursive)
    validator.validate_json(b'{"tree": {"value": 1, "children": [{"value": 2, "children": [{"value": "3"}]}]}}')
    with pytest.raises(ValidationFailed) as exc:
        validator.validate_json(b'{"tree": {"value": 1, "children": [{"children": [{"value": "x"}]}]}}')
    assert [field["field"] for field in fields(exc)] == [
        "tree.children.0.value",
        "tree.children.0.children.0.value",
    ]


def test_compile_schema_wraps_models_in_definitions() -> None:
    compiled = compile_schema(spec_schema(recursive))
    assert compiled.schema["type"] == "definitions"


def test_named_tuple_takes_an_object_of_its_fields_too() -> None:
    validator_for(named_tuples).validate_json(b'{"pair": {"left": 1}}')
    replica_model(named_tuples).model_validate({"pair": {"left": 1}})

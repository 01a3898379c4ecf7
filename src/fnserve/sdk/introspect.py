"""Reading user functions: how they run (sync, async, generator) and what their parameters are.

Decided once, at decoration time, so the replica never inspects a function per call.
"""

from __future__ import annotations

import enum
import functools
import inspect
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PydanticUserError, TypeAdapter, create_model
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from fnserve._runtime_modules import runtime_module
from fnserve.request import Request
from fnserve.sdk.context import ASSETS_PARAMETER, JOB_PARAMETER
from fnserve.spec import EndpointSpec, ParameterSpec
from fnserve.uploads import decode_array, decode_image, decoded_kind, is_file_annotation

# Parameters the platform fills in; callers never send them.
API_PARAMETER = "_api"
RESERVED_PARAMETERS = frozenset({API_PARAMETER, JOB_PARAMETER, ASSETS_PARAMETER})
_DEFAULT_REPR_LIMIT = 500


class CallKind(enum.StrEnum):
    sync = "sync"
    coroutine = "coroutine"
    generator = "generator"
    async_generator = "async_generator"

    @property
    def streams(self) -> bool:
        return self in (CallKind.generator, CallKind.async_generator)


def call_kind(func: Callable[..., Any]) -> CallKind:
    target = inspect.unwrap(func)
    if inspect.isasyncgenfunction(target):
        return CallKind.async_generator
    if inspect.isgeneratorfunction(target):
        return CallKind.generator
    if inspect.iscoroutinefunction(target):
        return CallKind.coroutine
    return CallKind.sync


def type_name(annotation: Any) -> str:
    """A readable name for a type hint: `int`, `list[str]`, `Any` when absent."""
    if annotation is inspect.Parameter.empty:
        return "Any"
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        if decoded_kind(annotation) is not None:  # `PIL.Image.Image`, `numpy.ndarray`: the docs know them by it
            return f"{annotation.__module__}.{annotation.__qualname__}"
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def json_default(value: Any) -> Any:
    """A parameter default as JSON shows it: itself when JSON-serializable, else its `str()`, cut to 500."""
    try:
        orjson.dumps(value)
    except TypeError:
        return str(value)[:_DEFAULT_REPR_LIMIT]
    return value


def request_parameter(func: Callable[..., Any]) -> str | None:
    """The parameter annotated `fs.Request`, if any (it is not a caller-visible parameter)."""
    for name, annotation in resolved_annotations(func).items():
        if annotation is Request:
            return name
    return None


def describe_parameters(func: Callable[..., Any], *, skip_first: bool) -> tuple[dict[str, ParameterSpec], bool]:
    """The caller-visible parameters of `func`, and whether it takes `**kwargs`."""
    signature = inspect.signature(func)
    hints = resolved_annotations(func)
    parameters: dict[str, ParameterSpec] = {}
    var_kwargs = False
    for index, parameter in enumerate(signature.parameters.values()):
        if skip_first and index == 0:
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_kwargs = True
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL or parameter.name in RESERVED_PARAMETERS:
            continue
        if hints.get(parameter.name) is Request:
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ValueError(
                f"{func.__qualname__}() has a positional-only parameter {parameter.name!r}; endpoints receive "
                "arguments by name, so remove the '/'"
            )
        has_default = parameter.default is not inspect.Parameter.empty
        parameters[parameter.name] = ParameterSpec(
            type=type_name(_shown(parameter.annotation, hints.get(parameter.name))),
            default=json_default(parameter.default) if has_default else None,
            has_default=has_default,
            location="file" if is_file_annotation(hints.get(parameter.name)) else "body",
        )
    return parameters, var_kwargs


def return_type_name(func: Callable[..., Any]) -> str:
    hint = resolved_annotations(func, keep_return=True).get("return")
    return type_name(_shown(inspect.signature(func).return_annotation, hint))


def _shown(annotation: Any, hint: Any) -> Any:
    """The annotation as written (a string under `from __future__ import annotations`), but a PIL image or numpy
    array by its resolved type, whose full name the docs look for (openapi.py)."""
    return hint if isinstance(annotation, str) and is_file_annotation(hint) and decoded_kind(hint) else annotation


def first_paragraph(doc: str | None) -> str:
    return inspect.cleandoc(doc) if doc else ""


def split_docstring(doc: str | None, *, route: str) -> tuple[str, dict[str, Any]]:
    """A docstring's text, and the OpenAPI operation fields in YAML after a `---` line (as apispec reads them).

    Raises ValueError naming `route` when that YAML is invalid or not a mapping.
    """
    text = first_paragraph(doc)
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip() == "---":
            yaml = runtime_module("yaml")  # only docstrings with OpenAPI YAML need it: replicas start faster without

            description = "\n".join(lines[:index]).strip()
            try:
                operation = yaml.safe_load("\n".join(lines[index + 1 :]))
            except yaml.YAMLError as exc:
                raise ValueError(
                    f"the OpenAPI YAML after '---' in the docstring of {route} is invalid: {exc}"
                ) from None
            if operation is None:
                return description, {}
            if not isinstance(operation, dict):
                raise ValueError(
                    f"the OpenAPI YAML after '---' in the docstring of {route} must be a mapping of operation fields "
                    f"(responses:, tags:, ...), got {type(operation).__name__}"
                )
            return description, operation
    return text, {}


def arguments_model(
    function: Callable[..., Any], spec: EndpointSpec, defaults: Mapping[str, Any] | None = None
) -> tuple[type[BaseModel], list[tuple[str, str]]]:
    """The pydantic model of an endpoint's arguments, and its (field name, parameter name) pairs.

    Fields are aliased by parameter name (`p0` ← `message`), so parameters may be called anything, even
    names pydantic reserves. `defaults` overrides parameter defaults (the replica injects initializer state).
    """
    defaults = defaults or {}
    names: list[tuple[str, str]] = []
    fields: dict[str, Any] = {}
    hints = resolved_annotations(function)
    signature = inspect.signature(function).parameters
    for index, (name, parameter) in enumerate(spec.parameters.items()):
        field_name = f"p{index}"
        names.append((field_name, name))
        annotation = hints.get(name, Any)
        if parameter.location == "file":  # a PIL image or numpy array is decoded from the upload as it is validated
            kind = decoded_kind(annotation) or _DECODED_NAMES.get(parameter.type.removesuffix(" | None"))
            decoder = _DECODERS.get(kind or "")
            if decoder is not None:
                annotation = Annotated[annotation, BeforeValidator(decoder)]
        if name in defaults and parameter.location == "body":
            # A factory, not a default: pydantic copies mutable defaults on every call, and injected state (a list,
            # a model, a connection pool) must be the very object the initializer made.
            fields[field_name] = (
                annotation,
                Field(default_factory=functools.partial(_same, defaults[name]), alias=name),
            )
            continue
        default = signature[name].default if parameter.has_default else ...
        fields[field_name] = (annotation, Field(default, alias=name))
    config = ConfigDict(
        extra="allow" if spec.var_kwargs else "forbid", arbitrary_types_allowed=True, populate_by_name=False
    )
    return create_model(f"{spec.function_name}_arguments", __config__=config, **fields), names


_DECODERS = {"image": decode_image, "array": decode_array}
# The same kinds by the type names the spec shows (type_name), for a replica where the annotation does not resolve.
_DECODED_NAMES = {"PIL.Image.Image": "image", "numpy.ndarray": "array"}


def _same(value: Any) -> Any:
    return value


class _LenientJsonSchema(GenerateJsonSchema):
    """JSON Schema that is never stricter than the pydantic model it comes from.

    The gateway refuses arguments by this schema before a replica sees them, so wherever the model accepts more
    than its schema says (a validator that sees the raw input, names that may also be aliases, a lazy iterable,
    an enum with `_missing_`), the schema says `{}`: any value, and the replica decides. A type with no schema at
    all (an arbitrary class) is `{}` too, rather than an error.
    """

    def handle_invalid_for_json_schema(self, schema: core_schema.CoreSchema, error_info: str) -> JsonSchemaValue:
        return {}

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        return {}

    def function_wrap_schema(self, schema: core_schema.WrapValidatorFunctionSchema) -> JsonSchemaValue:
        return {}

    def generator_schema(self, schema: core_schema.GeneratorSchema) -> JsonSchemaValue:
        return {}

    def enum_schema(self, schema: core_schema.EnumSchema) -> JsonSchemaValue:
        if getattr(schema["cls"]._missing_, "__func__", None) is not enum.Enum._missing_.__func__:  # type: ignore[attr-defined]
            return {}
        return super().enum_schema(schema)

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        return {} if _loose_names(schema) else super().model_schema(schema)

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        return {} if _loose_names(schema) else super().dataclass_schema(schema)

    def typed_dict_schema(self, schema: core_schema.TypedDictSchema) -> JsonSchemaValue:
        return {} if _loose_names(schema) else super().typed_dict_schema(schema)


def _loose_names(schema: Mapping[str, Any]) -> bool:
    """Whether a model accepts field names, alias choices or numbers beyond what its JSON Schema shows."""
    config = schema.get("config") or {}
    if config.get("validate_by_name") or config.get("populate_by_name") or config.get("coerce_numbers_to_str"):
        return True
    inner = schema.get("schema", schema)
    while inner.get("type") in ("function-before", "function-after", "function-wrap", "function-plain"):
        inner = inner.get("schema", {})
    fields = inner.get("fields", {})
    return any(
        not isinstance(field.get("validation_alias", ""), str)
        for field in (fields.values() if isinstance(fields, dict) else fields)
    )


def arguments_schema(function: Callable[..., Any], spec: EndpointSpec) -> dict[str, Any] | None:
    """The JSON Schema of an endpoint's arguments object, or None when pydantic cannot build one."""
    try:
        model, _ = arguments_model(function, spec)
        with warnings.catch_warnings():  # a default that is not JSON is left out of the schema: fine, say nothing
            warnings.simplefilter("ignore")
            return model.model_json_schema(by_alias=True, schema_generator=_LenientJsonSchema)
    except Exception:  # a type pydantic cannot even build a validator for: the replica reports it at start
        return None


def return_schema(function: Callable[..., Any]) -> dict[str, Any] | None:
    """The JSON Schema of what an endpoint returns, from its return annotation; None when it has none."""
    annotation = resolved_annotations(function, keep_return=True).get("return", inspect.Parameter.empty)
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    try:
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
        except PydanticUserError:  # models, dataclasses and TypedDicts carry their own config, and refuse one
            adapter = TypeAdapter(annotation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return adapter.json_schema(mode="serialization", schema_generator=_LenientJsonSchema)
    except Exception:
        return None


def resolved_annotations(function: Callable[..., Any], *, keep_return: bool = False) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable forward references: those parameters accept any value, the others keep theirs
        hints = _each_annotation(function)
    if not keep_return:
        hints.pop("return", None)
    return hints


def _each_annotation(function: Callable[..., Any]) -> dict[str, Any]:
    """The annotations that resolve, one by one. Under `from __future__ import annotations` they are strings, and a
    function pickled by value (`fs.deploy`) keeps only the globals its body uses: `image: Image.Image` does not
    resolve in the replica when the body never names `Image` (the spec's type names fill that gap: arguments_model)."""
    target = inspect.unwrap(function)
    namespace = dict(getattr(target, "__globals__", {}))
    hints: dict[str, Any] = {}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        try:
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:
            continue
    return hints

"""Checking an endpoint's arguments in the gateway, before a request reaches a replica.

The arguments are checked against the endpoint's JSON Schema, compiled by `schema_compiler` into a pydantic_core
validator as lax as the replica's model. The gateway refuses only what the replica would refuse too (a 422 worded as
the replica words it, or a 400 for a body that is not a JSON object), and the replica still validates everything.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import orjson
from pydantic_core import ErrorDetails, InitErrorDetails, SchemaValidator, ValidationError, core_schema

from fnserve.errors import InvalidRequest, ValidationFailed
from fnserve.gateway.schema_compiler import CompiledSchema, compile_schema

logger = logging.getLogger("fnserve.gateway")


class ArgumentsValidator:
    """Validates one endpoint's arguments in the gateway, from the JSON Schema its spec carries.

    Args:
        schema: the JSON Schema of the endpoint's arguments object, as pydantic's `model_json_schema(by_alias=True)`
            makes it: properties are the parameters, `additionalProperties: false` unless it takes `**kwargs`.
        route: `METHOD /path`, for error messages.
        optional: parameters the replica fills in when the caller leaves them out (initializer state), so not
            required here whatever the schema says.

    Example:
        >>> validator = ArgumentsValidator(
        ...     {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}, route="POST /double"
        ... )
        >>> validator.validate_json(b'{"n": "42"}')  # lax, like the replica: "42" is an int
        >>> validator.validate_json(b'{"n": "x"}')
        Traceback (most recent call last):
        fnserve.errors.ValidationFailed: Invalid arguments for POST /double: `n` Input should be a valid integer, ...
    """

    def __init__(self, schema: Mapping[str, Any], *, route: str, optional: Collection[str] = ()) -> None:
        self.route = route
        try:
            compiled = compile_schema(schema, optional=optional)
            self._validator = SchemaValidator(compiled.schema)
        except Exception as exc:  # a schema the compiler misreads must not take the endpoint down: let objects through
            logger.warning(
                "Arguments schema of %s not compiled (%s); the replica alone validates its calls", route, exc
            )
            compiled = CompiledSchema(core_schema.dict_schema())
            self._validator = SchemaValidator(compiled.schema)
        self._compiled = compiled
        self._takes_no_arguments = _passes(self._validator, {})

    def validate_json(self, body: bytes) -> None:
        """Parse and validate a request body of arguments in one pass (`b""` is no arguments).

        Use it when the call has no path or query parameters; otherwise `validate_request`.

        Raises:
            InvalidRequest: the body is not JSON, or not a JSON object.
            ValidationFailed: the arguments do not match the parameters.
        """
        if not body:
            if not self._takes_no_arguments:
                self.validate({})
            return
        try:
            self._validator.validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if errors[0]["type"] != "json_invalid":
                raise self._refusal(errors, from_json=True) from None
        else:
            return
        # pydantic_core's parser refuses a few documents the replica's (orjson) reads, e.g. nesting deeper than 200.
        self.validate(_parse_object(body))

    def validate(self, values: Mapping[str, Any]) -> None:
        """Validate arguments already parsed and merged (query < body < path), as the replica receives them.

        Raises:
            ValidationFailed: the arguments do not match the parameters.
        """
        try:
            self._validator.validate_python(values)
        except ValidationError as exc:
            raise self._refusal(exc.errors(include_url=False), from_json=False) from None

    def validate_request(self, body: bytes, path: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Validate one call's arguments, merged as the replica merges them: query < body < path parameters."""
        if not path and not query:
            self.validate_json(body)
            return
        values: dict[str, Any] = dict(query)
        if body:
            values.update(_parse_object(body))
        values.update(path)
        self.validate(values)

    def _refusal(self, errors: list[ErrorDetails], *, from_json: bool) -> InvalidRequest:
        first = errors[0]
        if not first["loc"] and first["type"] == "dict_type":
            return _not_an_object(first["input"])
        errors = [self._compiled.explain(error) for error in errors]
        return ValidationFailed.for_arguments(self.route, _python_wording(errors) if from_json else errors)


def _parse_object(body: bytes) -> dict[str, Any]:
    """The body as the replica parses it (orjson), or InvalidRequest."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON ({exc}); send a JSON object of arguments") from None
    if not isinstance(parsed, dict):
        raise _not_an_object(parsed)
    return parsed


def _not_an_object(value: Any) -> InvalidRequest:
    return InvalidRequest(
        f'request body must be a JSON object of arguments, got {type(value).__name__}; for example {{"x": 1}}'
    )


def _python_wording(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Errors as pydantic words them for Python input, as the replica sees it ("a valid list", not "a valid array")."""
    line_errors: list[InitErrorDetails] = []
    for error in errors:
        line: InitErrorDetails = {"type": error["type"], "loc": error["loc"], "input": error["input"]}
        if "ctx" in error:
            line["ctx"] = error["ctx"]
        line_errors.append(line)
    try:
        return ValidationError.from_exception_data("arguments", line_errors).errors(include_url=False)
    except (KeyError, TypeError, ValueError):  # an error type pydantic_core does not know: keep the JSON wording
        return errors


def _passes(validator: SchemaValidator, value: Any) -> bool:
    try:
        validator.validate_python(value)
    except ValidationError:
        return False
    return True

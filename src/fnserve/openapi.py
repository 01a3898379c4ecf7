"""How a service describes itself: the API description that `/info` serves and `_api` receives, and the
OpenAPI 3.1 document behind its `/docs`.

Both are built from the `ServiceSpec` alone (plus which parameters the initializer fills in), so the
server and the replica produce the same dicts. The HTML pages that show them live in `docs.py`.
"""

from __future__ import annotations

import copy
import json
import re
import reprlib
from collections.abc import Collection, Mapping
from typing import Any

from fnserve.spec import EndpointSpec, ServiceSpec, is_catch_all, openapi_path, path_parameters


def api_description(spec: ServiceSpec, injected: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`{"name", "description", "paths": {path: {"method", "streaming", "description", "parameters",
    "var_kwargs", "return_type"}}}`. A path served by several methods is keyed `"METHOD /path"` after the first.

    `injected` is the initializer's state, when it is a dict: a body parameter of one of its names is filled in
    from it (`"auto": true`), and its `default` shows the value it gets, as its `repr` (as Covalent shows it).
    """
    injected = injected or {}
    paths: dict[str, Any] = {}
    for endpoint in spec.endpoints:
        key = endpoint.path if endpoint.path not in paths else endpoint.key
        parameters = {}
        for name, parameter in endpoint.parameters.items():
            auto = name in injected and parameter.location == "body"
            default = _shown_repr(injected[name]) if auto else parameter.default
            parameters[name] = {"type": parameter.type, "default": default, "auto": auto}
        paths[key] = {
            "method": endpoint.method,
            "streaming": endpoint.streaming,
            "description": endpoint.description,
            "parameters": parameters,
            "var_kwargs": endpoint.var_kwargs,
            "return_type": endpoint.return_type,
        }
    if spec.http_app is not None:  # an app served whole has no endpoints: its own OpenAPI describes it
        described: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description,
            "paths": paths,
            "http_app": spec.http_app,
        }
        if spec.command is not None:  # what runs, and where its inference and health paths are (docs/COMMANDS.md)
            described["command"] = spec.command.model_dump(mode="json")
        return described
    return {"name": spec.name, "description": spec.description, "paths": paths}


def _shown_repr(value: Any) -> str:
    """An injected value as `/info` shows it: its repr, at most 500 characters, at a bounded cost for large
    containers (reprlib abbreviates them), and never an error."""
    try:
        return _REPR.repr(value)[:_REPR_LIMIT]
    except Exception:
        return f"<{type(value).__name__}>"


_REPR_LIMIT = 500
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR_LIMIT
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = _REPR.maxdict = 50
_REPR.maxlevel = 4

OPENAPI_VERSION = "3.1.0"
ERROR_SCHEMA_NAME = "ErrorResponse"

_OPERATION_KEYS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SIMPLE_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}
_BODY_KEYS_OF_OURS = ("title", "type", "properties", "required")
_LOCAL_REF = "#/$defs/"
_COMPONENT_REF = "#/components/schemas/"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The envelope of every fnserve error.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable and machine-readable, e.g. `validation_error`."},
                "message": {"type": "string", "description": "What happened, and what to do next."},
                "request_id": {"type": "string", "description": "Also sent as the X-Request-ID header."},
                "details": {"type": ["object", "null"], "description": "Structured extras, such as the bad fields."},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
_SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "A token of this service (`fnserve tokens`)."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "The same token, as a header."},
}


def service_openapi(
    spec: ServiceSpec,
    *,
    server_url: str | None = None,
    version: int | None = None,
    auto_parameters: Collection[str] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of one service, as its `/docs/specs.json` serves it.

    Args:
        spec: the service.
        server_url: the server's base URL (`http://127.0.0.1:8000`). When given, the document names
            `server_url + route_prefix` as its server and its paths are relative to the prefix; when not, it names
            no server and its paths include the prefix.
        version: the version number shown as `info.version` ("1" when not given).
        auto_parameters: parameters the initializer's state fills in, which callers may leave out.

    Returns:
        A JSON-serializable dict. Schemas of type hints live in `components.schemas`; each endpoint's docstring
        YAML (after `---`) is merged into its operation, the YAML winning.

    Example:
        >>> import fnserve as fs
        >>> @fs.service(auth=False)
        ... def greeter(): ...
        >>> @greeter.endpoint("/hello")
        ... def hello(name: str) -> str: ...
        >>> service_openapi(greeter.spec)["paths"]["/greeter/hello"]["post"]["operationId"]
        'hello'
    """
    schemas = _Schemas()
    operation_ids: set[str] = set()
    prefix = spec.route_prefix if server_url is None else "/"
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in spec.endpoints:
        operation = _merge(_operation(endpoint, schemas, auto_parameters), _user_operation(endpoint))
        operation["operationId"] = _unique_id(str(operation["operationId"]), operation_ids)
        paths.setdefault(_join(prefix, openapi_path(endpoint.path)), {})[endpoint.method.lower()] = operation
    ping = _ping_operation(_unique_id("ping", operation_ids))
    if spec.auth:
        ping["security"] = []  # health checks need no token
    paths.setdefault(_join(prefix, "/ping"), {})["get"] = ping

    info: dict[str, Any] = {"title": spec.name, "version": "1" if version is None else str(version)}
    if spec.description:
        info["description"] = spec.description
    document: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": info}
    if server_url is not None:
        url = server_url.rstrip("/") + ("" if spec.route_prefix == "/" else spec.route_prefix)
        document["servers"] = [{"url": url or "/"}]
    document["paths"] = paths
    components: dict[str, Any] = {"schemas": schemas.components()}
    if spec.auth:
        components["securitySchemes"] = copy.deepcopy(_SECURITY_SCHEMES)
        document["security"] = [{name: []} for name in _SECURITY_SCHEMES]
    document["components"] = components
    return document


def _operation(endpoint: EndpointSpec, schemas: _Schemas, auto_parameters: Collection[str]) -> dict[str, Any]:
    name = endpoint.function_name
    if name.endswith(".__call__"):  # a class served by `__call__`: one operation per method
        name = f"{endpoint.method.lower()}_call"
    operation: dict[str, Any] = {"operationId": _operation_id(name)}
    summary, description = _split_description(endpoint.description)
    if summary:
        operation["summary"] = summary
    if description:
        operation["description"] = description

    arguments = _arguments_schema(endpoint, schemas)
    properties: dict[str, Any] = arguments.get("properties", {})
    path_names = path_parameters(endpoint.path)
    if path_names:
        operation["parameters"] = [_path_parameter(name, properties.get(name), endpoint) for name in path_names]
        if is_catch_all(endpoint.path):
            operation["parameters"][-1]["description"] = (
                "The rest of the path, slashes included: this route takes every path under "
                f"`{endpoint.path.rpartition('{')[0] or '/'}` that no other route matches."
            )
    body_properties = {name: schema for name, schema in properties.items() if name not in path_names}
    if body_properties or endpoint.var_kwargs:
        auto = {name for name, p in endpoint.parameters.items() if p.auto or name in auto_parameters}
        required = [name for name in arguments.get("required", []) if name in body_properties and name not in auto]
        body: dict[str, Any] = {"type": "object", "properties": body_properties}
        if required:
            body["required"] = required
        # The rest (`additionalProperties`, ...) as pydantic wrote it; its title is the generated `f_arguments`.
        body.update((key, value) for key, value in arguments.items() if key not in _BODY_KEYS_OF_OURS)
        operation["requestBody"] = {"required": bool(required), "content": {"application/json": {"schema": body}}}
        files = endpoint.file_parameters
        if files:  # Swagger UI offers a file picker for `format: binary` in a form
            form = copy.deepcopy(body)
            for name in files:
                form["properties"][name] = {"type": "string", "format": "binary"}
            form.pop("additionalProperties", None)
            operation["requestBody"]["content"]["multipart/form-data"] = {"schema": form}
        if len(files) == 1:  # a body of any other media type is the file itself (gateway/http.py raw_body)
            operation["requestBody"]["description"] = (
                f"A JSON object of arguments, or the raw bytes of `{files[0]}` with their own content type (the "
                "other arguments then in the query string)."
            )
            operation["requestBody"]["content"]["*/*"] = {"schema": {"type": "string", "format": "binary"}}

    if endpoint.request_parameter is not None:  # a webhook: the body is the request's, the arguments in the query
        query = [
            {"name": name, "in": "query", "required": name in arguments.get("required", []), "schema": schema}
            for name, schema in body_properties.items()
        ]
        operation["parameters"] = operation.get("parameters", []) + query
        operation["requestBody"] = {
            "description": f"Any body, of any content type: `{endpoint.request_parameter}` receives the request whole.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    responses: dict[str, Any] = {"200": _success_response(endpoint, schemas)}
    if endpoint.parameters or endpoint.var_kwargs:
        responses["422"] = _error_response("The arguments do not match the parameters; `details` names the fields.")
    responses["4XX"] = _error_response("The request was refused: bad input, missing token, unknown route, ...")
    responses["5XX"] = _error_response("The function raised, timed out, or no replica could take the call.")
    operation["responses"] = responses
    return operation


def _arguments_schema(endpoint: EndpointSpec, schemas: _Schemas) -> dict[str, Any]:
    """The arguments object's schema with its `$defs` hoisted; made roughly from the type names when unknown."""
    if endpoint.arguments_schema is not None:
        return schemas.hoist(endpoint.arguments_schema)
    properties = {name: _rough_schema(parameter.type) for name, parameter in endpoint.parameters.items()}
    required = [name for name, parameter in endpoint.parameters.items() if not parameter.has_default]
    return {"type": "object", "properties": properties, "required": required}


def _rough_schema(type_name: str) -> dict[str, Any]:
    simple = _SIMPLE_TYPES.get(type_name)
    return {} if simple is None else {"type": simple}


def _path_parameter(name: str, schema: dict[str, Any] | None, endpoint: EndpointSpec) -> dict[str, Any]:
    if schema is None:
        parameter = endpoint.parameters.get(name)
        schema = _rough_schema(parameter.type) if parameter is not None else {"type": "string"}
    schema = {key: value for key, value in schema.items() if key != "title"}
    result: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if isinstance(schema.get("description"), str):
        result["description"] = schema["description"]
    return result


# Return annotations whose answer is raw bytes (responses.py), not JSON.
_BYTES_RETURNS = ("bytes", "bytearray")
_RESPONSE_RETURNS = ("Response", "FileResponse")
# Return annotations whose answer is encoded by the caller's Accept (responses.to_frame); introspect.type_name.
_IMAGE_RETURN = "PIL.Image.Image"
_ARRAY_RETURN = "numpy.ndarray"


def _success_response(endpoint: EndpointSpec, schemas: _Schemas) -> dict[str, Any]:
    if endpoint.media_type is not None:
        return {
            "description": "The function's chunks, raw and back to back, as they are produced.",
            "content": {endpoint.media_type: {"schema": {"type": "string", "format": "binary"}}},
        }
    if endpoint.return_type.removesuffix(" | None") == _IMAGE_RETURN:
        binary = {"schema": {"type": "string", "format": "binary"}}
        return {
            "description": "The image, as PNG unless the request's Accept asks for image/jpeg or image/webp.",
            "content": {media_type: copy.deepcopy(binary) for media_type in ("image/png", "image/jpeg", "image/webp")},
        }
    if endpoint.return_type.removesuffix(" | None") == _ARRAY_RETURN:
        return {
            "description": "The array: nested JSON lists, or an .npy file when the request's Accept asks for "
            "application/x-npy.",
            "content": {
                "application/json": {"schema": {"type": "array"}},
                "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    returned = endpoint.return_type.rpartition(".")[2]
    if returned in _BYTES_RETURNS:
        binary = {"schema": {"type": "string", "format": "binary"}}
        return {"description": "The function's bytes.", "content": {"application/octet-stream": binary}}
    if returned in _RESPONSE_RETURNS:
        binary = {"schema": {"type": "string", "format": "binary"}}
        return {"description": "The function's answer, with the media type it names.", "content": {"*/*": binary}}
    if endpoint.streaming:
        chunk = {"schema": {"type": "string"}}
        return {
            "description": "Chunks as the function yields them: their bytes back to back, or one Server-Sent Event "
            "per chunk (a `data:` line per line of it) when the request sends `Accept: text/event-stream`.",
            "content": {"text/plain": chunk, "text/event-stream": copy.deepcopy(chunk)},
        }
    schema = {} if endpoint.return_schema is None else schemas.hoist(endpoint.return_schema)
    return {"description": "The function's return value.", "content": {"application/json": {"schema": schema}}}


def _error_response(description: str) -> dict[str, Any]:
    schema = {"$ref": _COMPONENT_REF + ERROR_SCHEMA_NAME}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ping_operation(operation_id: str) -> dict[str, Any]:
    healthy = {
        "type": "object",
        "properties": {"status": {"type": "string", "const": "healthy"}},
        "required": ["status"],
    }
    return {
        "operationId": operation_id,
        "tags": ["service"],
        "summary": "Health check",
        "description": "Answers when a replica of the service is ready to take calls.",
        "responses": {
            "200": {"description": "A replica is ready.", "content": {"application/json": {"schema": healthy}}},
            "5XX": _error_response("No replica is ready (`no_replicas_available`, `deployment_failed`)."),
        },
    }


def _split_description(text: str) -> tuple[str, str]:
    """The summary (the first paragraph, on one line) and the rest of a docstring's text."""
    paragraphs = text.strip().split("\n\n", 1)
    summary = " ".join(line.strip() for line in paragraphs[0].splitlines() if line.strip())
    return summary, paragraphs[1].strip() if len(paragraphs) > 1 else ""


def _user_operation(endpoint: EndpointSpec) -> dict[str, Any]:
    """The docstring's YAML for this operation: all of it, or apispec's entry for this method (`get: {...}`)."""
    fields: Any = endpoint.openapi
    if fields and all(isinstance(key, str) and key.lower() in _OPERATION_KEYS for key in fields):
        fields = next((value for key, value in fields.items() if key.lower() == endpoint.method.lower()), {})
    return _string_keys(fields) if isinstance(fields, dict) else {}


def _string_keys(value: Any) -> Any:
    # YAML reads `404:` as an int; OpenAPI keys are strings.
    if isinstance(value, dict):
        return {str(key): _string_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_string_keys(item) for item in value]
    return value


def _merge(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """apispec's merge: their scalars and lists win, dicts merge. `parameters` merge by (name, in), so YAML that
    describes one parameter keeps the others."""
    merged = dict(ours)
    for key, value in theirs.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merge(current, value)
        elif key == "parameters" and isinstance(value, list) and isinstance(current, list):
            merged[key] = _merge_parameters(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_parameters(ours: list[Any], theirs: list[Any]) -> list[Any]:
    merged = list(ours)
    for parameter in theirs:
        key = (parameter.get("name"), parameter.get("in")) if isinstance(parameter, dict) else None
        index = next(
            (i for i, p in enumerate(merged) if key is not None and (p.get("name"), p.get("in")) == key),
            None,
        )
        if index is None:
            merged.append(copy.deepcopy(parameter))
        else:
            merged[index] = _merge(merged[index], parameter)
    return merged


def _operation_id(function_name: str) -> str:
    # `Greeter.hello` and `test_x.<locals>.hello` both read best as `hello`.
    name = _UNSAFE_ID.sub("_", function_name.rsplit(".", 1)[-1]) or "operation"
    return name if not name[0].isdigit() else "op_" + name


def _unique_id(candidate: str, taken: set[str]) -> str:
    name, n = candidate, 1
    while name in taken:
        n += 1
        name = f"{candidate}_{n}"
    taken.add(name)
    return name


def _join(prefix: str, path: str) -> str:
    if prefix == "/":
        return path
    return prefix if path == "/" else prefix + path


class _Schemas:
    """`components.schemas`, filled from each schema's `$defs`.

    A definition keeps its name unless another one already took it; then it gets the first free `_2`, `_3`, ...
    suffix. Definitions that are equal (with everything they reference) share one entry.
    """

    def __init__(self) -> None:
        self._schemas: dict[str, Any] = {ERROR_SCHEMA_NAME: copy.deepcopy(_ERROR_SCHEMA)}
        self._fingerprints: dict[str, str] = {ERROR_SCHEMA_NAME: "fnserve:error"}

    def components(self) -> dict[str, Any]:
        return dict(sorted(self._schemas.items()))

    def hoist(self, schema: dict[str, Any]) -> dict[str, Any]:
        """`schema` without its `$defs`, which move here; its references point to their new names."""
        definitions: dict[str, Any] = schema.get("$defs") or {}
        names: dict[str, str] = {}
        for local in definitions:
            fingerprint = _fingerprint(local, definitions)
            base = _UNSAFE_NAME.sub("_", local) or "Schema"
            name, n = base, 1
            while self._fingerprints.get(name, fingerprint) != fingerprint:
                n += 1
                name = f"{base}_{n}"
            self._fingerprints[name] = fingerprint
            names[local] = name
        for local, name in names.items():
            if name not in self._schemas:
                self._schemas[name] = _rewrite_refs(definitions[local], names)
        hoisted: dict[str, Any] = _rewrite_refs({key: value for key, value in schema.items() if key != "$defs"}, names)
        return hoisted


def _fingerprint(name: str, definitions: dict[str, Any]) -> str:
    """A definition, and every definition it reaches, as one canonical string."""
    reached: dict[str, Any] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        if current in reached or current not in definitions:
            continue
        reached[current] = definitions[current]
        pending.extend(_local_refs(definitions[current]))
    return json.dumps(reached, sort_keys=True, default=str)


def _local_refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        parts = _split_ref(ref) if isinstance(ref, str) else None
        found = [] if parts is None else [parts[0]]
        return found + [name for item in value.values() for name in _local_refs(item)]
    if isinstance(value, list):
        return [name for item in value for name in _local_refs(item)]
    return []


def _split_ref(ref: str) -> tuple[str, str] | None:
    """`#/$defs/Name/rest` → `("Name", "rest")`; None for a reference elsewhere."""
    if not ref.startswith(_LOCAL_REF):
        return None
    name, _, rest = ref[len(_LOCAL_REF) :].partition("/")
    return name.replace("~1", "/").replace("~0", "~"), rest


def _rewrite_refs(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        result = {key: _rewrite_refs(item, names) for key, item in value.items()}
        ref = value.get("$ref")
        parts = _split_ref(ref) if isinstance(ref, str) else None
        if parts is not None and parts[0] in names:
            name, rest = parts
            result["$ref"] = _COMPONENT_REF + names[name] + ("/" + rest if rest else "")
        return result
    if isinstance(value, list):
        return [_rewrite_refs(item, names) for item in value]
    return value

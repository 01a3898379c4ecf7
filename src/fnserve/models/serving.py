"""A model file served as an ordinary class service: `model_service` builds it; nothing here is special to the platform.

The service's initializer loads the model once per replica (`loaders.py`); its endpoints are plain methods, so a
test can call them directly. The input schema is known before the model loads (read from the file by `info.py`,
with the standard library), so the spec the client sends describes each row in the OpenAPI document; once loaded,
the model's own `feature_names_in_`/`n_features_in_` (or ONNX inputs) take over. Rows are checked while the
arguments are validated, so a row of the wrong shape is a 422 whose message states the expected shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NotRequired

from fnserve._runtime_modules import runtime_module
from fnserve.errors import SpecError, ValidationFailed
from fnserve.models.formats import ModelFormat, detect_format
from fnserve.models.info import as_format, read_model_info
from fnserve.models.loaders import LoadedModel, load_model
from fnserve.models.packages import check_importable
from fnserve.models.schema import ModelSchema, rows_to_matrix
from fnserve.sdk.service import Service, endpoint

if TYPE_CHECKING:
    from pydantic import AfterValidator
    from pydantic_core import PydanticCustomError
    from typing_extensions import TypedDict
else:
    # The runtime's own copies, which validate the arguments: a replica in the model's environment sets them aside,
    # and `import pydantic` there finds the environment's copy, or none.
    AfterValidator = runtime_module("pydantic").AfterValidator
    PydanticCustomError = runtime_module("pydantic_core").PydanticCustomError
    TypedDict = runtime_module("typing_extensions").TypedDict

PREDICT_PATH = "/predict"
SCHEMA_PATH = "/schema"
# Allonia's real-time serving routes, kept with their trailing '/' so its clients work unchanged.
ALLONIA_PREDICT_PATH = "/api/v1.0/predict/"
ALLONIA_STATUS_PATH = "/api/v1.0/health/status/"


class Prediction(TypedDict):
    """What `/predict` answers: one prediction per row; with `proba`, the classes and each row's probabilities."""

    predictions: list[Any]
    classes: NotRequired[list[Any]]
    probabilities: NotRequired[list[list[float]]]


class HealthStatus(TypedDict):
    """What Allonia's health route answers."""

    status: str
    model: str
    format: str
    estimator: str


class ModelDescription(TypedDict):
    """What `/schema` answers: the model, its input row, and whether it gives probabilities."""

    model: str
    format: str
    estimator: str
    n_features: int | None
    feature_names: list[str] | None
    proba: bool
    proba_by_default: bool
    classes: list[Any] | None


@dataclass
class _Contract:
    """The input contract the argument validators check: the file's, then the loaded model's (set at load)."""

    schema: ModelSchema
    has_proba: bool | None = None  # None until the model is loaded


class CheckedRows(list[list[float | int]]):
    """Rows already checked against the model's schema (by argument validation), in feature order."""


def model_service(
    model_path: str | os.PathLike[str],
    *,
    name: str,
    fmt: ModelFormat | str | None = None,
    trusted_types: Sequence[str] = (),
    proba: bool = False,
    **service_options: Any,
) -> Service[Any]:
    """Build the service that serves the model file at `model_path`: an ordinary class service.

    Building it reads the file with the standard library only (format, input schema), so the deploying client needs
    no scikit-learn; the model itself is loaded by the service's initializer, in each replica.

    Args:
        model_path: the model file; a relative path is taken from the current directory, so a generated app
            should pass `Path(__file__).parent / "model.skops"`.
        name: the service name (its route prefix is `/<name>` unless `route_prefix` is given).
        fmt: "skops", "joblib", "pickle" or "onnx"; None: `detect_format(model_path)`.
        trusted_types: for skops files, the types outside skops' trusted defaults that may be loaded, fully
            qualified ("sklearn.tree._tree.Tree"); loading refuses the file while any other is in it.
        proba: answer class probabilities when a call does not say (`"proba"` in the body); needs `predict_proba`.
        **service_options: options of `@fs.service` (resources, replicas, autoscaling, auth, route_prefix,
            requirements, ...).

    Returns:
        A `Service` with the routes `POST /predict`, `POST /api/v1.0/predict/` (the same), `GET /schema` and
        `GET /api/v1.0/health/status/`. Calling it loads the model and returns the object whose methods
        (`predict`, `allonia_predict`, `model_schema`, `allonia_health_status`) are the endpoints.

    Raises:
        SpecError: the file is missing or not of its format, or names code no replica can import.

    Example:
        >>> iris = model_service("iris.skops", name="iris")  # doctest: +SKIP
        >>> iris().predict(rows=[[5.1, 3.5, 1.4, 0.2]])  # doctest: +SKIP
        {'predictions': [0]}
    """
    path = Path(model_path)
    model_format = detect_format(path) if fmt is None else as_format(fmt)
    info = read_model_info(path, model_format)
    check_importable(path.name, info.types)
    if isinstance(trusted_types, str) or not all(isinstance(item, str) for item in trusted_types):
        raise SpecError(
            f"trusted_types must be a list of fully qualified type names, got {trusted_types!r}; "
            "for example ['sklearn.tree._tree.Tree']"
        )
    if not isinstance(proba, bool):
        raise SpecError(f"proba must be True or False, got {proba!r}")
    trusted = tuple(trusted_types)
    contract = _Contract(info.schema)
    service_name = name
    estimator_name = _short(info.estimator) or "model"

    def __init__(self: Any) -> None:
        model = load_model(path, model_format, trusted_types=trusted)
        if proba and not model.has_proba:
            raise SpecError(
                f"model {service_name!r} was deployed to answer probabilities by default, but its "
                f"{model.estimator} has no predict_proba(); deploy it without proba"
            )
        if model.schema.n_features is not None or contract.schema.n_features is None:
            contract.schema = model.schema
        contract.has_proba = model.has_proba
        self.model = model

    def predict(self: Any, rows: list[Any], proba: bool = proba) -> Prediction:
        return _answer(self.model, contract, service_name, rows, proba)

    def allonia_predict(self: Any, rows: list[Any], proba: bool = proba) -> Prediction:
        return _answer(self.model, contract, service_name, rows, proba)

    def model_schema(self: Any) -> ModelDescription:
        model: LoadedModel = self.model
        names = contract.schema.feature_names
        return {
            "model": service_name,
            "format": model_format.value,
            "estimator": model.estimator,
            "n_features": contract.schema.n_features,
            "feature_names": list(names) if names is not None else None,
            "proba": model.has_proba,
            "proba_by_default": proba,
            "classes": model.classes,
        }

    def allonia_health_status(self: Any) -> HealthStatus:
        return {"status": "ok", "model": service_name, "format": model_format.value, "estimator": self.model.estimator}

    rows_type = Annotated[list[Any], AfterValidator(_rows_validator(contract))]
    proba_type = Annotated[bool, AfterValidator(_proba_validator(contract, service_name))]
    class_name = "ModelService"
    for method, returns in (
        (predict, Prediction),
        (allonia_predict, Prediction),
        (model_schema, ModelDescription),
        (allonia_health_status, HealthStatus),
    ):
        method.__qualname__ = f"{class_name}.{method.__name__}"
        method.__annotations__ = {"return": returns}
    for method in (predict, allonia_predict):
        method.__annotations__.update(rows=rows_type, proba=proba_type)
    predict.__doc__ = _predict_doc(contract.schema, estimator_name)
    allonia_predict.__doc__ = _predict_doc(contract.schema, estimator_name, alias_of=PREDICT_PATH)
    model_schema.__doc__ = (
        "The model's input: its features (names and count), classes, and whether it gives probabilities."
    )
    allonia_health_status.__doc__ = "Allonia's health route: `ok` once the model is loaded."
    __init__.__qualname__ = f"{class_name}.__init__"
    namespace = {
        "__init__": __init__,
        "__doc__": f"Predictions of the {estimator_name} in {path.name} ({model_format.value}), served by fnserve.",
        "__module__": __name__,
        "__qualname__": class_name,
        "predict": endpoint(PREDICT_PATH)(predict),
        "allonia_predict": endpoint(ALLONIA_PREDICT_PATH)(allonia_predict),
        "model_schema": endpoint(SCHEMA_PATH, method="GET")(model_schema),
        "allonia_health_status": endpoint(ALLONIA_STATUS_PATH, method="GET")(allonia_health_status),
    }
    server = type(class_name, (), namespace)
    return Service(server, name=name, **service_options)


def _answer(model: LoadedModel, contract: _Contract, service_name: str, rows: Any, proba: bool) -> Prediction:
    matrix = rows if isinstance(rows, CheckedRows) else rows_to_matrix(rows, contract.schema)
    if not proba:
        return {"predictions": model.predict(matrix)}
    if not model.has_proba:
        message = _no_proba(service_name, model.estimator)
        raise ValidationFailed(message, details={"fields": [{"field": "proba", "message": message}]})
    predictions, classes, probabilities = model.predict_proba(matrix)
    return {"predictions": predictions, "classes": classes, "probabilities": probabilities}


def _rows_validator(contract: _Contract) -> Any:
    def check_rows(rows: list[Any]) -> CheckedRows:
        try:
            return CheckedRows(rows_to_matrix(rows, contract.schema))
        except ValidationFailed as exc:
            raise PydanticCustomError("model_input", "{reason}", {"reason": exc.message}) from None

    return check_rows


def _proba_validator(contract: _Contract, service_name: str) -> Any:
    def check_proba(proba: bool) -> bool:
        if proba and contract.has_proba is False:
            raise PydanticCustomError("model_input", "{reason}", {"reason": _no_proba(service_name, None)})
        return proba

    return check_proba


def _no_proba(service_name: str, estimator: str | None) -> str:
    what = f"its {estimator}" if estimator else "it"
    return f"model {service_name!r} cannot answer probabilities: {what} has no predict_proba(); call without proba"


def _short(estimator: str | None) -> str | None:
    return estimator.rsplit(".", 1)[-1] if estimator else None


def _predict_doc(schema: ModelSchema, estimator: str, *, alias_of: str | None = None) -> str:
    """The endpoint's docstring: what it takes, then (after '---') the OpenAPI fields that show each row's shape."""
    keyed = " or an object keyed by feature name" if schema.feature_names else ""
    text = (
        f"Predict with the {estimator}: one prediction per row.\n\n"
        f"`rows` is a list of rows, each {schema.describe()} as a list in that order{keyed}. With `proba: true` "
        "the answer adds `classes` and, for each row, `probabilities` in the order of `classes`."
    )
    if alias_of is not None:
        text += f" The same as `{alias_of}`, at the route Allonia's real-time serving uses."
    body = {
        "content": {
            "application/json": {
                "schema": {"properties": {"rows": schema.rows_json_schema()}},
                "example": {"rows": schema.example_rows()},
            }
        }
    }
    return f"{text}\n\n---\n{json.dumps({'requestBody': body})}\n"

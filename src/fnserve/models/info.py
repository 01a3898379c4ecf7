"""What a model file says about itself, read with the standard library: estimator, versions, modules, input schema.

`read_model_info` gathers it per format (the readers are `skops_file`, `pickled` and `onnx_file`); `model_summary`
is the same as JSON for the CLI. Both run on the deploying client, which has no scikit-learn, and in the replica
before the model is loaded (to describe the endpoints' input).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnserve.errors import SpecError
from fnserve.models import pickled, skops_file
from fnserve.models.formats import ModelFormat
from fnserve.models.onnx_file import ELEMENT_TYPES, OnnxGraph, read_onnx
from fnserve.models.packages import unresolved_modules
from fnserve.models.schema import ModelSchema

# Attributes through which a wrapper estimator reaches the one that saw the features (Pipeline: its first step).
_INNER_ESTIMATORS = ("best_estimator_", "estimator_", "regressor_")
_SKIPPED_STEPS = (None, "passthrough", "drop")
_MAX_DEPTH = 16

OnnxShape = Sequence[int | str | None] | None


@dataclass(frozen=True)
class ModelInfo:
    """What the standard library could read from a model file.

    Attributes:
        estimator: the saved object's class as `module.Name`, e.g. `sklearn.pipeline.Pipeline` (None for ONNX).
        schema: the input row it takes, from `feature_names_in_`/`n_features_in_` or the ONNX graph's inputs.
        sklearn_version: the `_sklearn_version` the estimator was saved with, when it records one.
        types: the classes and functions it names, as `module.Name` (skops nodes, pickle globals), sorted.
        modules: the modules its objects come from.
        problem: why part of the file could not be read, when it could not (the rest is still filled in).
    """

    path: Path
    format: ModelFormat
    estimator: str | None
    schema: ModelSchema
    sklearn_version: str | None = None
    skops_version: str | None = None
    types: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    compression: str | None = None
    onnx: OnnxGraph | None = None
    problem: str | None = None


def read_model_info(path: str | os.PathLike[str], fmt: ModelFormat | str) -> ModelInfo:
    """Read what the model file at `path`, in format `fmt`, records about itself; nothing in it runs.

    Raises:
        SpecError: the file is missing, or is not a file of this format at all.
    """
    file, model_format = Path(path), as_format(fmt)
    if not file.is_file():
        raise SpecError(f"model file {str(file)!r} does not exist or is not a file")
    if model_format is ModelFormat.skops:
        return _skops_info(file)
    if model_format is ModelFormat.onnx:
        try:
            graph = read_onnx(file)
        except ValueError as exc:
            raise SpecError(f"model file {file.name!r} is not an ONNX model: {exc}") from None
        return ModelInfo(file, model_format, None, onnx_schema([(v.name, v.shape) for v in graph.inputs]), onnx=graph)
    scan = pickled.scan_pickle(file, joblib=model_format is ModelFormat.joblib)
    if scan.error is not None and not scan.globals:
        raise SpecError(f"model file {file.name!r} is not a readable {model_format.value} file: {scan.error}")
    found = pickled.object_class(scan.root)
    version = next(
        (
            value
            for item in pickled.walk(scan.root)
            if isinstance(item, dict) and isinstance(value := item.get("_sklearn_version"), str)
        ),
        None,
    )
    return ModelInfo(
        file,
        model_format,
        ".".join(found) if found else None,
        _pickle_schema(scan.root),
        sklearn_version=version,
        types=tuple(sorted(f"{module}.{name}" for module, name in scan.globals if module != "builtins")),
        modules=tuple(scan.modules),
        compression=scan.compression,
        problem=scan.error,
    )


def model_summary(path: str | os.PathLike[str], fmt: ModelFormat | str) -> dict[str, Any]:
    """A JSON-able description of the model file at `path`, for the CLI to show before deploying.

    Example:
        >>> model_summary("iris.skops", "skops")  # doctest: +SKIP
        {'file': 'iris.skops', 'format': 'skops', 'size_bytes': 10485, 'estimator': 'LogisticRegression',
         'estimator_class': 'sklearn.linear_model._logistic.LogisticRegression', 'n_features': 4,
         'feature_names': ['sepal_length', ...], 'sklearn_version': '1.9.1', 'skops_version': '0.16.0', ...}
    """
    info = read_model_info(path, fmt)
    summary: dict[str, Any] = {
        "file": info.path.name,
        "format": info.format.value,
        "size_bytes": info.path.stat().st_size,
        "estimator": info.estimator.rsplit(".", 1)[-1] if info.estimator else None,
        "estimator_class": info.estimator,
        **info.schema.to_dict(),
    }
    if info.format is ModelFormat.onnx and info.onnx is not None:
        graph = info.onnx
        summary["onnx"] = {
            "producer": graph.producer,
            "ir_version": graph.ir_version,
            "opsets": graph.opsets,
            "inputs": [_onnx_value(value) for value in graph.inputs],
            "outputs": [_onnx_value(value) for value in graph.outputs],
            "class_labels": list(graph.class_labels) if graph.class_labels is not None else None,
        }
        return summary
    summary["sklearn_version"] = info.sklearn_version
    if info.format is ModelFormat.skops:
        summary["skops_version"] = info.skops_version
        summary["types"] = list(info.types)
    if info.format is ModelFormat.joblib:
        summary["compression"] = info.compression
    summary["modules"] = list(info.modules)
    summary["unresolved_modules"] = unresolved_modules(info.modules)
    summary["problem"] = info.problem
    return summary


def as_format(fmt: ModelFormat | str) -> ModelFormat:
    """`fmt` as a ModelFormat; SpecError naming the formats when it is none of them."""
    try:
        return ModelFormat(fmt)
    except ValueError:
        names = ", ".join(repr(value.value) for value in ModelFormat)
        raise SpecError(f"model format must be one of {names}, got {fmt!r}") from None


def onnx_schema(inputs: Sequence[tuple[str, OnnxShape]]) -> ModelSchema:
    """The row an ONNX graph takes: one `[N, F]` tensor (F features), or one `[N, 1]` tensor per named feature."""
    if len(inputs) == 1:
        shape = inputs[0][1]
        width = shape[1] if shape is not None and len(shape) == 2 else None
        return ModelSchema(n_features=width if isinstance(width, int) and width > 0 else None)
    if inputs and all(_one_column(shape) for _, shape in inputs):
        return ModelSchema(feature_names=tuple(name for name, _ in inputs))
    return ModelSchema()


def _one_column(shape: OnnxShape) -> bool:
    return shape is not None and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))


def _onnx_value(value: Any) -> dict[str, Any]:
    element = ELEMENT_TYPES.get(value.element_type, None) if value.element_type is not None else None
    return {"name": value.name, "kind": value.kind, "element_type": element, "shape": value.shape}


def _skops_info(file: Path) -> ModelInfo:
    try:
        document = skops_file.read_skops(file)
    except ValueError as exc:
        raise SpecError(f"model file {file.name!r} is not a readable skops file: {exc}") from None
    found = document.estimator
    return ModelInfo(
        file,
        ModelFormat.skops,
        ".".join(found) if found else None,
        _skops_schema(document.root),
        sklearn_version=document.sklearn_version(),
        skops_version=document.skops_version,
        types=tuple(document.types()),
        modules=tuple(document.modules()),
    )


def _fitted_schema(names: Any, width: Any) -> ModelSchema | None:
    """What a fitted estimator's `feature_names_in_` (first) or `n_features_in_` say of its input, if anything."""
    if isinstance(names, list) and names and all(isinstance(name, str) for name in names):
        return ModelSchema(feature_names=tuple(names))
    if isinstance(width, int) and not isinstance(width, bool) and width > 0:
        return ModelSchema(n_features=width)
    return None


def _walk_schema(
    node: Any,
    state_of: Callable[[Any], dict[str, Any]],
    names_of: Callable[[Any], Any],
    width_of: Callable[[Any], Any],
    inner_of: Callable[[dict[str, Any]], Any],
) -> ModelSchema:
    """The input schema of the first estimator down from `node` that records one (a pipeline's first real step, a
    wrapper's estimator), at most _MAX_DEPTH deep; read the same way from a skops document and a scanned pickle."""
    for _ in range(_MAX_DEPTH):
        state = state_of(node)
        found = _fitted_schema(names_of(state.get("feature_names_in_")), width_of(state.get("n_features_in_")))
        if found is not None:
            return found
        node = inner_of(state)
        if node is None:
            break
    return ModelSchema()


def _skops_schema(node: Any) -> ModelSchema:
    return _walk_schema(node, skops_file.node_state, skops_file.json_value, skops_file.json_value, _skops_inner)


def _skops_inner(state: dict[str, Any]) -> Any:
    steps = state.get("steps")
    if isinstance(steps, dict) and isinstance(steps.get("content"), list):
        for step in steps["content"]:
            parts = step.get("content") if isinstance(step, dict) else None
            # A step kept as JSON is 'passthrough', 'drop' or None: the next step sees the features.
            if isinstance(parts, list) and len(parts) == 2 and not _skops_json(parts[1]):
                return parts[1]
        return None
    return next((state[key] for key in _INNER_ESTIMATORS if key in state), None)


def _skops_json(node: Any) -> bool:
    return isinstance(node, dict) and node.get("__loader__") == "JsonNode"


def _pickle_schema(value: Any) -> ModelSchema:
    return _walk_schema(value, pickled.object_state, pickled.array_values, pickled.as_int, _pickle_inner)


def _pickle_inner(state: dict[str, Any]) -> Any:
    steps = state.get("steps")
    if isinstance(steps, list):
        for step in steps:
            if isinstance(step, tuple) and len(step) == 2 and not _skipped(step[1]):
                return step[1]
        return None
    return next((state[key] for key in _INNER_ESTIMATORS if key in state), None)


def _skipped(step: Any) -> bool:
    return step is None or (isinstance(step, str) and step in _SKIPPED_STEPS)

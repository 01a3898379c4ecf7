"""Loading a model file in the replica, and running it on a feature matrix: one loader per format.

This is the only module that imports numpy, scikit-learn, skops, joblib or onnxruntime, and only inside the
functions that need them: the replica's environment has them, the client and the server need not. skops files
load safely (every type skops does not trust must be named by the owner); joblib and pickle files run code when
loaded, so they are loaded as trusted, the owner having chosen to deploy them. Results come back JSON-able:
numpy arrays as lists, numpy scalars as Python numbers.
"""

from __future__ import annotations

import abc
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fnserve.errors import SpecError
from fnserve.models.formats import ModelFormat
from fnserve.models.info import onnx_schema
from fnserve.models.onnx_file import read_onnx
from fnserve.models.schema import ModelSchema

Matrix = Sequence[Sequence[float | int]]
_UNNAMED_ROWS = "X does not have valid feature names"
# onnxruntime's input types that JSON numbers can feed, as numpy dtypes.
_ONNX_INPUT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
}


class LoadedModel(abc.ABC):
    """A model ready to predict: its input row (`schema`), its class labels when it is a classifier that
    records them, and whether it gives class probabilities."""

    format: ModelFormat
    estimator: str
    schema: ModelSchema
    classes: list[Any] | None
    has_proba: bool

    @abc.abstractmethod
    def predict(self, matrix: Matrix) -> list[Any]:
        """One prediction per row."""

    @abc.abstractmethod
    def predict_proba(self, matrix: Matrix) -> tuple[list[Any], list[Any], list[list[float]]]:
        """Predictions, the class labels, and one probability per class for each row (in the labels' order)."""


def load_model(path: Path, fmt: ModelFormat, *, trusted_types: Sequence[str] = ()) -> LoadedModel:
    """Load the model file at `path` once, for a replica to serve.

    Args:
        path: the model file.
        fmt: its format (`detect_format`).
        trusted_types: for skops, the types outside skops' trusted defaults that the owner allows, as fully
            qualified names ("sklearn.tree._tree.Tree"); loading refuses any other.

    Raises:
        SpecError: skops found types nobody allowed, the file holds no model, or an ONNX input cannot be fed JSON.
    """
    if fmt is ModelFormat.onnx:
        return OnnxModel(path)
    if fmt is ModelFormat.skops:
        estimator = _load_skops(path, trusted_types)
    elif fmt is ModelFormat.joblib:
        import joblib

        estimator = joblib.load(path)
    else:
        with path.open("rb") as file:
            estimator = pickle.load(file)  # trusted by the owner who deployed it: see the module docstring
    return EstimatorModel(estimator, fmt, path)


def _load_skops(path: Path, trusted_types: Sequence[str]) -> Any:
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=path)
    refused = [name for name in untrusted if name not in trusted_types]
    if refused:
        listed = ", ".join(refused)
        flags = " ".join(f"--trust {name}" for name in refused)
        raise SpecError(
            f"model file {path.name!r} holds types that skops does not trust by default: {listed}. Loading them runs "
            f"their code; if you trust this file, allow them when deploying ({flags}, or "
            f"model_service(..., trusted_types={refused!r}))"
        )
    return skops.io.load(path, trusted=untrusted)


class EstimatorModel(LoadedModel):
    """A scikit-learn-style estimator: anything with `predict(X)`, and maybe `predict_proba(X)` and `classes_`."""

    def __init__(self, estimator: Any, fmt: ModelFormat, path: Path) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise SpecError(
                f"model file {path.name!r} holds a {type(estimator).__module__}.{type(estimator).__qualname__}, "
                "which has no predict() method; save the fitted estimator itself"
            )
        self._estimator = estimator
        self.format = fmt
        self.estimator = type(estimator).__qualname__
        self.schema = _estimator_schema(estimator)
        self.has_proba = callable(getattr(estimator, "predict_proba", None))
        classes = getattr(estimator, "classes_", None)
        self.classes = _listed(classes) if classes is not None else None

    def predict(self, matrix: Matrix) -> list[Any]:
        predictions: list[Any] = _listed(self._estimator.predict(_features(matrix)))
        return predictions

    def predict_proba(self, matrix: Matrix) -> tuple[list[Any], list[Any], list[list[float]]]:
        features = _features(matrix)
        probabilities = _listed(self._estimator.predict_proba(features))
        labels = self.classes if self.classes is not None else list(range(len(probabilities[0])))
        return _listed(self._estimator.predict(features)), labels, probabilities


def _features(matrix: Matrix) -> Any:
    import numpy

    # Rows come as plain lists in feature order, checked against `feature_names_in_` already, so scikit-learn's
    # warning that they carry no names says nothing. The filter is added once per process (and again if a test
    # runner reset the filters), not around each call: `catch_warnings` swaps the filters of every thread at once.
    if not any(entry[1] is not None and entry[1].pattern == _UNNAMED_ROWS for entry in warnings.filters):
        warnings.filterwarnings("ignore", message=_UNNAMED_ROWS, category=UserWarning)
    return numpy.asarray(matrix, dtype=numpy.float64)


def _estimator_schema(estimator: Any) -> ModelSchema:
    try:  # a Pipeline answers for its first step; an estimator fitted on a plain array has no names
        names = getattr(estimator, "feature_names_in_", None)
        width = getattr(estimator, "n_features_in_", None)
    except Exception:
        return ModelSchema()
    if names is not None:
        listed = [str(name) for name in _listed(names)]
        if listed:
            return ModelSchema(feature_names=tuple(listed))
    return ModelSchema(n_features=int(width)) if width is not None else ModelSchema()


class OnnxModel(LoadedModel):
    """An ONNX graph run by onnxruntime on the CPU: rows fed to its first input (or one input per feature); the
    first output is the prediction, and an output named like probabilities (or a sequence of maps) the proba."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        self._session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        self.format = ModelFormat.onnx
        self.schema = onnx_schema([(value.name, value.shape) for value in inputs])
        if len(inputs) > 1 and self.schema.feature_names is None:
            shapes = ", ".join(f"{value.name} {value.shape}" for value in inputs)
            raise SpecError(
                f"ONNX model {path.name!r} takes inputs {shapes}; fnserve feeds rows as one [N, features] tensor or "
                "as one [N, 1] tensor per feature"
            )
        for value in inputs:
            if value.type not in _ONNX_INPUT_DTYPES:
                raise SpecError(
                    f"ONNX model {path.name!r} takes input {value.name!r} of type {value.type}; fnserve feeds JSON "
                    f"numbers, to inputs of type {', '.join(_ONNX_INPUT_DTYPES)}"
                )
        self._inputs = [(value.name, _ONNX_INPUT_DTYPES[value.type], len(value.shape or ())) for value in inputs]
        self._label = outputs[0].name
        self._proba = next(
            (value.name for value in outputs[1:] if "prob" in value.name.lower() or value.type.startswith("seq(map")),
            None,
        )
        self.has_proba = self._proba is not None
        graph = read_onnx(path)  # the class labels, which onnxruntime does not expose
        self._class_labels = graph.class_labels
        self.classes = list(graph.class_labels) if graph.class_labels is not None else None
        self.estimator = f"ONNX graph from {graph.producer}" if graph.producer else "ONNX graph"

    def predict(self, matrix: Matrix) -> list[Any]:
        (labels,) = self._session.run([self._label], self._feed(matrix))
        return _predictions(labels)

    def predict_proba(self, matrix: Matrix) -> tuple[list[Any], list[Any], list[list[float]]]:
        labels, probabilities = self._session.run([self._label, self._proba], self._feed(matrix))
        if isinstance(probabilities, list):  # ZipMap: one {label: probability} per row
            classes = list(probabilities[0]) if probabilities else list(self._class_labels or ())
            rows = [[float(row[label]) for label in classes] for row in probabilities]
            return _predictions(labels), _listed(classes), rows
        listed = _listed(probabilities)
        width = len(listed[0]) if listed else 0
        known = self._class_labels is not None and len(self._class_labels) == width
        return _predictions(labels), list(self._class_labels or ()) if known else list(range(width)), listed

    def _feed(self, matrix: Matrix) -> dict[str, Any]:
        import numpy

        features = numpy.asarray(matrix, dtype=numpy.float64)
        if len(self._inputs) == 1:
            name, dtype, _ = self._inputs[0]
            return {name: features.astype(dtype)}
        return {
            name: features[:, column : column + 1].astype(dtype) if rank == 2 else features[:, column].astype(dtype)
            for column, (name, dtype, rank) in enumerate(self._inputs)
        }


def _predictions(labels: Any) -> list[Any]:
    # A regressor's [N, 1] output reads as N values, as scikit-learn's predict() gives them.
    shape: tuple[int, ...] = getattr(labels, "shape", ())
    if len(shape) == 2 and shape[1] == 1:
        labels = labels.reshape(-1)
    listed: list[Any] = _listed(labels)
    return listed


def _listed(value: Any) -> Any:
    """`value` as JSON-able Python: arrays as (nested) lists, numpy scalars as int/float/str/bool."""
    if hasattr(value, "toarray"):  # a scipy sparse matrix
        value = value.toarray()
    dtype = getattr(value, "dtype", None)
    if dtype is not None and callable(getattr(value, "tolist", None)):
        listed = value.tolist()
        return listed if dtype.kind != "O" else _listed(listed)
    if isinstance(value, list | tuple):
        return [_listed(item) for item in value]
    if isinstance(value, dict):
        return {_listed(key): _listed(item) for key, item in value.items()}
    return value

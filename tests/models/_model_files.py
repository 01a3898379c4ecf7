"""Small models trained on iris (which ships with scikit-learn) and saved in each format, for the model tests.

Each model is trained once per test process (cached); tests save it and read it back, and never change it.
"""

from __future__ import annotations

import functools
import pickle
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import skops.io
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
EXTENSIONS = {"skops": ".skops", "joblib": ".joblib", "pickle": ".pkl", "onnx": ".onnx"}
# Rows of each class, in feature order: setosa (0), versicolor (1), virginica (2).
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]


def iris() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    features, labels = load_iris(return_X_y=True)
    return features, labels


@functools.cache
def classifier(*, named: bool = True) -> Any:
    """A logistic regression; with `named`, it records FEATURES as `feature_names_in_`, as one fitted on a frame."""
    features, labels = iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    if named:
        model.feature_names_in_ = np.asarray(FEATURES, dtype=object)
    return model


@functools.cache
def scaled_pipeline() -> Any:
    features, labels = iris()
    return Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=1000))]).fit(
        features, labels
    )


@functools.cache
def regressor() -> Any:
    features, _ = iris()
    return LinearRegression().fit(features[:, :3], features[:, 3])  # petal width from the other three


@functools.cache
def tree() -> Any:
    """A decision tree: skops does not trust its `sklearn.tree._tree.Tree` by default."""
    features, labels = iris()
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, labels)


def save(model: Any, folder: Path, fmt: str, *, name: str = "model", zipmap: bool = True) -> Path:
    """Save `model` in format `fmt` ("skops", "joblib", "pickle", "onnx") under `folder`; its path."""
    path = folder / f"{name}{EXTENSIONS[fmt]}"
    if fmt == "skops":
        skops.io.dump(model, path)
    elif fmt == "joblib":
        joblib.dump(model, path)
    elif fmt == "pickle":
        path.write_bytes(pickle.dumps(model))
    else:
        width = int(model.n_features_in_)
        graph = to_onnx(
            model,
            initial_types=[("X", FloatTensorType([None, width]))],
            options={id(model): {"zipmap": zipmap}} if hasattr(model, "predict_proba") else None,
        )
        path.write_bytes(graph.SerializeToString())
    return path


def predicted(model: Any, rows: list[list[float]], method: str = "predict") -> Any:
    """What the model answers in this process, with scikit-learn's warning about rows without names silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return getattr(model, method)(np.asarray(rows, dtype=np.float64)).tolist()

"""No-code model services: a saved model file (skops, joblib, pickle or ONNX) served as a normal fnserve service.

The client side reads a model file with the standard library alone, never running it: `detect_format` names its
format, `infer_requirements` the packages its replicas need, `model_summary` what it holds, and `entrypoint_source`
writes the `app.py` that serves it. The replica side, `model_service`, builds an ordinary `Service` whose
initializer loads the model once (scikit-learn, skops or onnxruntime are imported there, and only there) and whose
endpoints answer `POST /predict`, the Allonia aliases `POST /api/v1.0/predict/` and `GET /api/v1.0/health/status/`,
and `GET /schema`. Deploying and building the replicas' environment live elsewhere (the CLI and `envs`).
"""

from __future__ import annotations

from fnserve.models.entrypoint import entrypoint_source
from fnserve.models.formats import ModelFormat, detect_format
from fnserve.models.info import ModelInfo, model_summary, read_model_info
from fnserve.models.requirements import infer_requirements
from fnserve.models.schema import ModelSchema, rows_to_matrix
from fnserve.models.serving import model_service

__all__ = [
    "ModelFormat",
    "ModelInfo",
    "ModelSchema",
    "detect_format",
    "entrypoint_source",
    "infer_requirements",
    "model_service",
    "model_summary",
    "read_model_info",
    "rows_to_matrix",
]

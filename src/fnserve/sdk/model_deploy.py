"""Deploying a saved model with no code: `fs.deploy_model("iris.skops", name="iris")` and `fnserve deploy-model`.

The model file goes into a fresh project folder beside a generated `app.py` (models/entrypoint.py); its requirements
are read from the file (models/requirements.py: skops → scikit-learn of the version it was saved with), so the server
builds its environment, and the service it becomes is described here with the standard library alone: the deploying
machine needs no scikit-learn or onnxruntime.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fnserve.client.api import Client
from fnserve.client.deployment import Deployment
from fnserve.errors import SpecError
from fnserve.models import ModelFormat, detect_format, entrypoint_source, infer_requirements, model_service
from fnserve.models.entrypoint import ENTRYPOINT_FILE, SERVICE_ATTRIBUTE
from fnserve.sdk.deploy import deploy_project

# Formats whose loading runs code the file names: only for files the owner trusts.
TRUSTED_CODE_FORMATS = (ModelFormat.joblib, ModelFormat.pickle)


def save_model(model: object, folder: Path) -> Path:
    """An in-memory model saved in `folder`: with skops when it is installed (a format replicas load safely), else
    with joblib, else with pickle."""
    try:
        import skops.io
    except ImportError:
        pass
    else:
        path = folder / "model.skops"
        skops.io.dump(model, path)
        return path
    try:
        import joblib
    except ImportError:
        path = folder / "model.pkl"
        path.write_bytes(pickle.dumps(model))
        return path
    path = folder / "model.joblib"
    joblib.dump(model, path)
    return path


def deploy_model(
    model: str | os.PathLike[str] | object,
    *,
    name: str,
    proba: bool = False,
    trusted_types: Sequence[str] = (),
    requirements: Sequence[str] = (),
    replicas: int | None = None,
    keep_old: bool = False,
    url: str | None = None,
    api_key: str | None = None,
    client: Client | None = None,
) -> Deployment:
    """Serve a saved model as a service with `POST /predict` (rows in, predictions out; class probabilities with
    `"proba": true` when the model has `predict_proba`), `GET /schema` and Allonia's `/api/v1.0/predict/` and
    `/api/v1.0/health/status/`. Returns at once, BUILDING its environment; `.wait()` blocks until ACTIVE.

    Args:
        model: a file (`.skops`, `.joblib`, `.pkl`, `.onnx`), or a fitted estimator in memory (saved with skops when
            it is installed here). joblib and pickle files run the code they name when loaded: deploy only your own.
        name: the service name.
        proba: answer probabilities when a call does not say.
        trusted_types: for skops files, types outside skops' safe defaults that may be loaded (the error of a
            deploy without them lists them).
        requirements: packages beyond those the file implies (custom transformers' packages).
        replicas: how many replicas (default 1).
        keep_old: keep the running versions serving too (traffic split) instead of replacing them.
        url, api_key: the server and its owner key (defaults as for `fs.deploy`).
        client: a client to use instead (not closed here).

    Example:
        >>> client = fs.deploy_model("iris.skops", name="iris").wait()
        >>> client.predict(rows=[[5.1, 3.5, 1.4, 0.2]])
        {'predictions': [0]}
    """
    with tempfile.TemporaryDirectory(prefix="fnserve-model-") as work:
        project = Path(work) / "project"
        project.mkdir()
        if isinstance(model, str | os.PathLike):
            source = Path(model)
            if not source.is_file():
                raise SpecError(f"model file {str(source)!r} does not exist; give the path of a saved model")
            model_path = project / _bare_name(source.name)
            shutil.copyfile(source, model_path)
        else:
            model_path = save_model(model, project)
        fmt = detect_format(model_path)
        needed = sorted({*infer_requirements(model_path, fmt), *requirements}, key=str.lower)
        (project / ENTRYPOINT_FILE).write_text(
            entrypoint_source(
                model_path.name, name=name, fmt=fmt, trusted_types=trusted_types, proba=proba, requirements=needed
            )
        )
        service = model_service(
            model_path, name=name, fmt=fmt, trusted_types=trusted_types, proba=proba, requirements=needed
        )
        own_client = client is None
        api = client or Client(url, api_key=api_key)
        try:
            return deploy_project(
                service,
                project,
                f"{Path(ENTRYPOINT_FILE).stem}:{SERVICE_ATTRIBUTE}",
                client=api,
                replicas=replicas,
                keep_old=keep_old,
            )
        except BaseException:
            if own_client:
                api.close()  # no handle is returned, so nobody else could close its connections
            raise


def _bare_name(name: str) -> str:
    """The model's file name as the generated app names it: never `app.py` itself."""
    return f"model-{name}" if name == ENTRYPOINT_FILE else name

"""Saved models deployed with no code, for real: `fnserve deploy-model` and `fs.deploy_model`, their environment built
by uv from the file's own requirements, answering over HTTP what the model answers in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
from _auth import owner
from _cli import fnserve
from _model_files import ROWS, classifier, predicted, save, tree

import fnserve as fs


def call(url: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    if body is None:
        return httpx.get(f"{url}{path}", headers=owner(url), timeout=30)
    return httpx.post(f"{url}{path}", json=body, headers=owner(url), timeout=30)


def test_deploy_model_cli_serves_a_skops_model_predicting_as_in_process(env_server_url: str, tmp_path: Path) -> None:
    """1. A logistic regression trained here, saved with skops.
    2. `fnserve deploy-model model.skops --name iris`: its environment (scikit-learn of the version it was saved
       with) is built, the service is ACTIVE.
    3. /predict answers the same classes as the model here, probabilities with "proba", rows by feature name; the
       Allonia routes answer too; the OpenAPI document names the features; a row of the wrong width is a 422 that
       says the expected shape, and the replica keeps serving."""
    model = classifier()
    path = save(model, tmp_path, "skops")

    result = fnserve("deploy-model", str(path), "--name", "iris", "--timeout", "300", url=env_server_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ACTIVE" in result.stdout

    answer = call(env_server_url, "/iris/predict", {"rows": ROWS}).json()
    assert answer == {"predictions": predicted(model, ROWS)}
    with_proba = call(env_server_url, "/iris/predict", {"rows": ROWS, "proba": True}).json()
    assert np.allclose(with_proba["probabilities"], predicted(model, ROWS, "predict_proba"))
    named = [dict(zip(["sepal_length", "sepal_width", "petal_length", "petal_width"], ROWS[2], strict=True))]
    assert call(env_server_url, "/iris/predict", {"rows": named}).json() == {"predictions": predicted(model, ROWS[2:])}
    assert call(env_server_url, "/iris/api/v1.0/predict/", {"rows": ROWS}).json() == answer
    assert call(env_server_url, "/iris/api/v1.0/health/status/").json()["status"] == "ok"
    assert call(env_server_url, "/iris/health").json()["workers"]["idle"] == 1  # fnserve's own health route
    spec = httpx.get(f"{env_server_url}/iris/docs/specs.json", timeout=10).json()
    assert "sepal_length" in str(next(item for key, item in spec["paths"].items() if key.endswith("/predict")))

    wrong = call(env_server_url, "/iris/predict", {"rows": [[5.1, 3.5, 1.4]]})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "validation_error"
    assert "4 features" in wrong.json()["error"]["message"]
    assert call(env_server_url, "/iris/predict", {"rows": ROWS}).json() == answer


def test_deploy_model_from_python_serves_an_onnx_model_as_onnxruntime_does(env_server_url: str, tmp_path: Path) -> None:
    model = classifier(named=False)
    path = save(model, tmp_path, "onnx", zipmap=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"X": np.asarray(ROWS, dtype=np.float32)})[0].tolist()

    with fs.deploy_model(path, name="iris_onnx", url=env_server_url) as deployment:
        client = deployment.wait(timeout_s=300)
        assert client.predict(rows=ROWS) == {"predictions": expected}
        environment = client.refresh()._info["versions"][-1]["environment"]
    assert "onnxruntime" in environment["requirements"]


def test_deploy_model_of_an_estimator_in_memory_saves_it_with_skops(env_server_url: str) -> None:
    model = classifier()
    with fs.deploy_model(model, name="in_memory", url=env_server_url) as deployment:
        client = deployment.wait(timeout_s=300)
        assert client.predict(rows=ROWS) == {"predictions": predicted(model, ROWS)}
        requirements = client.refresh()._info["versions"][-1]["environment"]["requirements"]
    assert any(requirement.startswith("skops") for requirement in requirements)


def test_untrusted_skops_types_are_refused_until_the_owner_allows_them(env_server_url: str, tmp_path: Path) -> None:
    path = save(tree(), tmp_path, "skops")

    refused = fnserve("deploy-model", str(path), "--name", "tree", "--timeout", "300", url=env_server_url)
    assert refused.returncode == 1
    assert "sklearn.tree._tree.Tree" in refused.stdout + refused.stderr

    allowed = fnserve(
        "deploy-model", str(path), "--name", "tree", "--trust", "sklearn.tree._tree.Tree", url=env_server_url
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert call(env_server_url, "/tree/predict", {"rows": ROWS}).json() == {"predictions": predicted(tree(), ROWS)}


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_deploy_model_warns_that_pickles_run_code(env_server_url: str, tmp_path: Path, suffix: str) -> None:
    path = save(classifier(), tmp_path, "pickle" if suffix == ".pkl" else "joblib")

    result = fnserve("deploy-model", str(path), "--name", f"warned{suffix[1:]}", url=env_server_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "loading it runs the code it names" in result.stderr

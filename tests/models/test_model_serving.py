"""Model services: the endpoints `model_service` builds answer what the model answers, and refuse bad rows clearly.

The endpoints stay plain methods, called here directly; the runtime's own argument validation (`BoundEndpoint`)
shows what a replica answers over HTTP.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from _model_files import FEATURES, ROWS, classifier, iris, predicted, regressor, save, scaled_pipeline, tree
from onnx import TensorProto, helper, numpy_helper
from openapi_spec_validator import validate
from sklearn.linear_model import LogisticRegression

from fnserve.errors import NotFound, SpecError, ValidationFailed
from fnserve.gateway.router import ServiceRoutes
from fnserve.models import model_service
from fnserve.openapi import service_openapi
from fnserve.runtime.invoke import BoundEndpoint

FORMATS = ["skops", "joblib", "pickle", "onnx"]
ROUTES = ["POST /predict", "POST /api/v1.0/predict/", "GET /schema", "GET /api/v1.0/health/status/"]
EXPECTED_ROW = "4 features (sepal_length, sepal_width, petal_length, petal_width)"


def serve(path: Path, **options: Any) -> Any:
    """The loaded model service object (what a replica's initializer makes), for calling its endpoints."""
    return model_service(path, name="iris", **options)()


def bound(path: Path, route: str = "POST /predict", **options: Any) -> BoundEndpoint:
    """One endpoint of the service as a replica binds it, to validate request bodies the way the replica does."""
    service = model_service(path, name="iris", **options)
    endpoint = next(endpoint for endpoint in service.endpoints if endpoint.spec.key == route)
    return BoundEndpoint(endpoint, service(), api={})


@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_answers_what_the_model_answers_in_process(tmp_path: Path, fmt: str) -> None:
    model = classifier()
    server = serve(save(model, tmp_path, fmt))

    answer = server.predict(rows=ROWS)

    assert answer == {"predictions": predicted(model, ROWS)} == {"predictions": [0, 1, 2]}
    assert server.allonia_predict(rows=ROWS) == answer
    assert orjson.loads(orjson.dumps(answer)) == answer


@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_with_proba_answers_the_classes_and_each_rows_probabilities(tmp_path: Path, fmt: str) -> None:
    model = classifier()
    server = serve(save(model, tmp_path, fmt, zipmap=fmt == "onnx"))

    answer = server.predict(rows=ROWS, proba=True)

    assert answer["predictions"] == predicted(model, ROWS)
    assert answer["classes"] == [0, 1, 2]
    expected = predicted(model, ROWS, "predict_proba")
    assert answer["probabilities"] == [pytest.approx(row, abs=1e-5) for row in expected]  # ONNX runs in float32
    assert all(type(value) is float for row in answer["probabilities"] for value in row)


def test_onnx_probabilities_read_the_same_from_a_tensor_and_from_zipmap(tmp_path: Path) -> None:
    model = classifier()
    zipped = serve(save(model, tmp_path, "onnx", name="zipped", zipmap=True)).predict(rows=ROWS, proba=True)
    tensor = serve(save(model, tmp_path, "onnx", name="tensor", zipmap=False)).predict(rows=ROWS, proba=True)

    assert zipped["classes"] == tensor["classes"] == [0, 1, 2]
    assert zipped["probabilities"] == [pytest.approx(row, abs=1e-6) for row in tensor["probabilities"]]


def test_proba_by_default_when_deployed_with_it(tmp_path: Path) -> None:
    endpoint = bound(save(classifier(), tmp_path, "skops"), proba=True)

    encoded = endpoint.call_in_thread(endpoint.arguments(orjson.dumps({"rows": ROWS}), {}, {}))
    assert isinstance(encoded, bytes)
    answer = orjson.loads(encoded)

    assert set(answer) == {"predictions", "classes", "probabilities"}
    assert endpoint.spec.arguments_schema is not None
    assert endpoint.spec.arguments_schema["properties"]["proba"]["default"] is True


@pytest.mark.parametrize("fmt", ["skops", "joblib", "pickle"])
def test_predict_takes_rows_keyed_by_feature_name(tmp_path: Path, fmt: str) -> None:
    server = serve(save(classifier(), tmp_path, fmt))
    keyed = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in ROWS]  # any key order

    assert server.predict(rows=keyed) == server.predict(rows=ROWS) == {"predictions": [0, 1, 2]}


def test_string_class_labels_come_back_as_json_strings(tmp_path: Path) -> None:
    features, labels = iris()
    names = np.asarray(["setosa", "versicolor", "virginica"], dtype=object)[labels]
    model = LogisticRegression(max_iter=1000).fit(features, names)
    server = serve(save(model, tmp_path, "skops"))

    answer = server.predict(rows=ROWS, proba=True)

    assert answer["predictions"] == ["setosa", "versicolor", "virginica"]
    assert answer["classes"] == ["setosa", "versicolor", "virginica"]
    assert json.loads(json.dumps(answer)) == answer


@pytest.mark.parametrize("fmt", ["skops", "onnx"])
def test_regressor_predicts_one_number_per_row(tmp_path: Path, fmt: str) -> None:
    model = regressor()
    rows = [row[:3] for row in ROWS]

    answer = serve(save(model, tmp_path, fmt)).predict(rows=rows)

    assert answer["predictions"] == pytest.approx(predicted(model, rows), abs=1e-4)  # [N, 1] from ONNX reads as N


def test_onnx_graph_with_one_input_per_feature_takes_rows_keyed_by_name(tmp_path: Path) -> None:
    """An ONNX graph fed one [N, 1] tensor per feature: its inputs' names are the feature names."""
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]) for name in ("height", "width")]
    weights = numpy_helper.from_array(np.asarray([[2.0], [3.0]], dtype=np.float32), "weights")
    nodes = [
        helper.make_node("Concat", ["height", "width"], ["both"], axis=1),
        helper.make_node("MatMul", ["both", "weights"], ["score"]),
    ]
    output = helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph(nodes, "score", inputs, [output], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "score.onnx"
    path.write_bytes(model.SerializeToString())
    server = serve(path)

    assert server.predict(rows=[{"width": 1, "height": 10}, [1, 1]]) == {"predictions": [23.0, 5.0]}
    assert server.model_schema()["feature_names"] == ["height", "width"]
    with pytest.raises(ValidationFailed, match=r"each row needs 2 features \(height, width\), got 3 in row 0"):
        server.predict(rows=[[1, 2, 3]])


BAD_ROWS = [
    pytest.param([[5.1, 3.5, 1.4]], f"each row needs {EXPECTED_ROW}, got 3 in row 0", id="short"),
    pytest.param([ROWS[0], [1, 2, 3, 4, 5]], f"each row needs {EXPECTED_ROW}, got 5 in row 1", id="long"),
    pytest.param(
        [[5.1, "x", 1.4, 0.2]],
        f"row 0, feature 'sepal_width' (column 1) must be a number, got 'x'; each row needs {EXPECTED_ROW}",
        id="text",
    ),
    pytest.param([[5.1, None, 1.4, 0.2]], "feature 'sepal_width' (column 1) must be a number, got None", id="null"),
    pytest.param([[5.1, 3.5, True, 0.2]], "feature 'petal_length' (column 2) must be a number, got True", id="bool"),
    pytest.param(
        [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}],
        f"row 0 lacks feature petal_width; each row needs {EXPECTED_ROW}",
        id="missing-name",
    ),
    pytest.param(
        [{**dict(zip(FEATURES, ROWS[0], strict=True)), "colour": 1}],
        f"row 0 has unknown feature colour; each row needs {EXPECTED_ROW}",
        id="unknown-name",
    ),
    pytest.param([], f"no rows were sent; send at least one row of {EXPECTED_ROW}", id="empty"),
    pytest.param(
        [5.1], "row 0 must be a list of numbers or an object keyed by feature name, got float", id="not-a-row"
    ),
]


@pytest.mark.parametrize(("rows", "message"), BAD_ROWS)
def test_predict_refuses_rows_of_the_wrong_shape_stating_the_expected_one(
    tmp_path: Path, rows: Any, message: str
) -> None:
    server = serve(save(classifier(), tmp_path, "skops"))

    with pytest.raises(ValidationFailed) as refused:
        server.predict(rows=rows)

    assert message in refused.value.message
    assert refused.value.http_status == 422
    assert refused.value.code == "validation_error"
    assert refused.value.details is not None
    assert refused.value.details["feature_names"] == list(FEATURES)


@pytest.mark.parametrize(("rows", "message"), BAD_ROWS)
def test_replica_answers_422_for_rows_of_the_wrong_shape(tmp_path: Path, rows: Any, message: str) -> None:
    """The rows are checked while the replica validates the arguments: a 422 naming `rows`, never a crash."""
    endpoint = bound(save(classifier(), tmp_path, "joblib"))

    with pytest.raises(ValidationFailed) as refused:
        endpoint.arguments(orjson.dumps({"rows": rows}), {}, {})

    assert refused.value.message.startswith("Invalid arguments for POST /predict: `rows` ")
    assert message in refused.value.message
    assert refused.value.details is not None
    assert refused.value.details["fields"][0]["field"] == "rows"


def test_replica_answers_422_when_rows_are_not_a_list(tmp_path: Path) -> None:
    endpoint = bound(save(classifier(), tmp_path, "pickle"), route="POST /api/v1.0/predict/")

    with pytest.raises(ValidationFailed, match=r"`rows` Input should be a valid list"):
        endpoint.arguments(b'{"rows": "5.1,3.5,1.4,0.2"}', {}, {})


def test_model_without_feature_names_takes_rows_as_lists_only(tmp_path: Path) -> None:
    server = serve(save(scaled_pipeline(), tmp_path, "joblib"))

    assert server.predict(rows=ROWS) == {"predictions": [0, 1, 2]}
    with pytest.raises(ValidationFailed, match=r"each row needs 4 features, got 3 in row 0"):
        server.predict(rows=[[5.1, 3.5, 1.4]])
    with pytest.raises(ValidationFailed, match=r"row 0 is an object, but this model recorded no feature names"):
        server.predict(rows=[dict(zip(FEATURES, ROWS[0], strict=True))])


def test_proba_is_refused_for_a_model_without_predict_proba(tmp_path: Path) -> None:
    path = save(regressor(), tmp_path, "skops")
    rows = [row[:3] for row in ROWS]

    with pytest.raises(ValidationFailed, match=r"model 'iris' cannot answer probabilities: .* no predict_proba"):
        serve(path).predict(rows=rows, proba=True)
    with pytest.raises(ValidationFailed, match=r"`proba` model 'iris' cannot answer probabilities"):
        bound(path).arguments(orjson.dumps({"rows": rows, "proba": True}), {}, {})
    with pytest.raises(SpecError, match=r"deployed to answer probabilities by default, but its LinearRegression"):
        serve(path, proba=True)


def test_skops_refuses_types_it_does_not_trust_until_the_owner_allows_them(tmp_path: Path) -> None:
    """1. A decision tree saved with skops holds `sklearn.tree._tree.Tree`, which skops does not trust by default.
    2. Building the service reads the file only; loading it (the initializer) refuses, naming the type and the fix.
    3. With the type in `trusted_types`, it loads and predicts as in process.
    """
    model = tree()
    path = save(model, tmp_path, "skops")
    service = model_service(path, name="iris")

    with pytest.raises(SpecError) as refused:
        service()
    message = str(refused.value)
    assert "holds types that skops does not trust by default: sklearn.tree._tree.Tree" in message
    assert "--trust sklearn.tree._tree.Tree" in message
    assert "trusted_types=['sklearn.tree._tree.Tree']" in message

    server = serve(path, trusted_types=["sklearn.tree._tree.Tree"])
    assert server.predict(rows=ROWS) == {"predictions": predicted(model, ROWS)}


def test_a_pickle_holding_no_model_is_refused_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))

    with pytest.raises(SpecError, match=r"'model.pkl' holds a builtins.dict, which has no predict\(\) method"):
        serve(path)


def test_schema_and_health_routes_describe_the_loaded_model(tmp_path: Path) -> None:
    server = serve(save(classifier(), tmp_path, "skops"))

    assert server.model_schema() == {
        "model": "iris",
        "format": "skops",
        "estimator": "LogisticRegression",
        "n_features": 4,
        "feature_names": list(FEATURES),
        "proba": True,
        "proba_by_default": False,
        "classes": [0, 1, 2],
    }
    assert server.allonia_health_status() == {
        "status": "ok",
        "model": "iris",
        "format": "skops",
        "estimator": "LogisticRegression",
    }


def test_spec_routes_include_allonias_paths_with_their_trailing_slash(tmp_path: Path) -> None:
    service = model_service(save(classifier(), tmp_path, "skops"), name="iris", auth=False, replicas=2)
    spec = service.spec
    routes = ServiceRoutes(spec)

    assert [endpoint.key for endpoint in spec.endpoints] == ROUTES
    assert (spec.name, spec.route_prefix, spec.kind, spec.auth, spec.replicas) == ("iris", "/iris", "class", False, 2)
    assert routes.match("POST", "/api/v1.0/predict/")[0].spec.function_name == "ModelService.allonia_predict"
    assert routes.match("GET", "/api/v1.0/health/status/")[0].spec.function_name == "ModelService.allonia_health_status"
    # Declared with the slash, matched without it too (docs/HTTP.md, "Routing rules")
    assert routes.match("POST", "/api/v1.0/predict")[0].spec.function_name == "ModelService.allonia_predict"
    with pytest.raises(NotFound):
        routes.match("POST", "/api/v1.0/predict/more")


def test_openapi_document_shows_each_rows_features(tmp_path: Path) -> None:
    spec = model_service(save(classifier(), tmp_path, "skops"), name="iris").spec
    document = service_openapi(spec)
    validate(document)

    body = document["paths"]["/iris/predict"]["post"]["requestBody"]["content"]["application/json"]
    rows = body["schema"]["properties"]["rows"]
    as_list, as_object = rows["items"]["anyOf"]
    assert (as_list["minItems"], as_list["maxItems"]) == (4, 4)
    assert as_object["required"] == list(FEATURES)
    assert body["example"] == {"rows": [dict.fromkeys(FEATURES, 0.0)]}
    assert EXPECTED_ROW in rows["description"]
    assert document["paths"]["/iris/predict"]["post"]["description"].startswith("`rows` is a list of rows, each 4")
    assert "The same as `/predict`" in document["paths"]["/iris/api/v1.0/predict/"]["post"]["description"]
    returned = document["paths"]["/iris/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    assert returned["schema"] != {}


def test_model_service_refuses_bad_options(tmp_path: Path) -> None:
    path = save(classifier(), tmp_path, "skops")

    with pytest.raises(SpecError, match=r"model format must be one of 'skops', 'joblib', 'pickle', 'onnx', got 'h5'"):
        model_service(path, name="iris", fmt="h5")
    with pytest.raises(SpecError, match=r"trusted_types must be a list of fully qualified type names"):
        model_service(path, name="iris", trusted_types="sklearn.tree._tree.Tree")
    with pytest.raises(SpecError, match=r"service name must be"):
        model_service(path, name="iris model")
    with pytest.raises(SpecError, match=r"is not a readable skops file"):
        model_service(save(classifier(), tmp_path, "pickle"), name="iris", fmt="skops")

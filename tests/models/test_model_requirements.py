"""What a model file needs and holds, read on the client with the standard library alone."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
import skops
from _model_files import FEATURES, classifier, save, scaled_pipeline

from fnserve.errors import SpecError
from fnserve.models import entrypoint_source, infer_requirements, model_summary
from fnserve.models.entrypoint import ENTRYPOINT_FILE, TARGET
from fnserve.models.packages import plain_version

SKLEARN = f"scikit-learn=={sklearn.__version__}"
# A pickle made with numpy 2 names numpy._core, which numpy 1 cannot import.
NUMPY = "numpy>=2" if int(np.__version__.split(".")[0]) >= 2 else "numpy"


def test_infer_requirements_of_skops_pins_the_versions_it_was_saved_with(tmp_path: Path) -> None:
    path = save(classifier(), tmp_path, "skops")

    assert infer_requirements(path, "skops") == ["numpy", SKLEARN, f"skops>={skops.__version__}"]


def test_infer_requirements_of_skops_reads_the_version_recorded_in_schema_json(tmp_path: Path) -> None:
    """The pin is what the file records (`_sklearn_version` in each estimator's state), not what is installed."""
    path = save(classifier(), tmp_path, "skops")
    rewritten = tmp_path / "old.skops"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "schema.json":
                data = data.replace(f'\\"{sklearn.__version__}\\"'.encode(), b'\\"1.4.2\\"')
                data = data.replace(f'"{skops.__version__}"'.encode(), b'"0.10.0"')
            target.writestr(item, data)

    assert infer_requirements(rewritten, "skops") == ["numpy", "scikit-learn==1.4.2", "skops>=0.10.0"]


def test_infer_requirements_of_joblib_and_pickle_come_from_their_globals(tmp_path: Path) -> None:
    model = scaled_pipeline()

    assert infer_requirements(save(model, tmp_path, "joblib"), "joblib") == ["joblib", NUMPY, SKLEARN]
    assert infer_requirements(save(model, tmp_path, "pickle"), "pickle") == [NUMPY, SKLEARN]


@pytest.mark.parametrize("compression", ["zlib", "gzip", "xz"])
def test_infer_requirements_reads_compressed_joblib_files(tmp_path: Path, compression: str) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(classifier(), path, compress=(compression, 3))

    assert infer_requirements(path, "joblib") == ["joblib", NUMPY, SKLEARN]
    assert model_summary(path, "joblib")["compression"] == compression


def test_infer_requirements_of_onnx_is_its_runtime(tmp_path: Path) -> None:
    assert infer_requirements(save(classifier(), tmp_path, "onnx"), "onnx") == ["numpy", "onnxruntime"]


def test_infer_requirements_leaves_unknown_modules_out_and_the_summary_names_them(tmp_path: Path) -> None:
    """A module outside the known packages is never guessed into a requirement: the owner names its package."""
    path = tmp_path / "model.pkl"
    # GLOBAL mycompany_features.scaling Scaler, an empty tuple, NEWOBJ, STOP: nothing in it is ever imported here.
    path.write_bytes(b"\x80\x02cmycompany_features.scaling\nScaler\n)\x81.")

    assert infer_requirements(path, "pickle") == []
    assert model_summary(path, "pickle")["unresolved_modules"] == ["mycompany_features"]


def test_infer_requirements_refuses_classes_defined_in_main(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x02c__main__\nMyTransformer\n)\x81}b.")

    with pytest.raises(SpecError, match=r"'model.pkl' uses MyTransformer, defined in the script that saved it"):
        infer_requirements(path, "pickle")


def test_plain_version_lets_only_a_version_into_a_requirement() -> None:
    assert plain_version("1.5.2") == "1.5.2"
    assert plain_version("1.6.dev0") == "1.6.dev0"
    assert plain_version("1.5.2 --index-url http://example.com") is None
    assert plain_version("1.0; os_name == 'nt'") is None
    assert plain_version(None) is None


def test_model_summary_of_skops_names_the_estimator_features_and_versions(tmp_path: Path) -> None:
    summary = model_summary(save(classifier(), tmp_path, "skops"), "skops")

    assert summary["estimator"] == "LogisticRegression"
    assert summary["estimator_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert summary["n_features"] == 4
    assert summary["feature_names"] == list(FEATURES)
    assert summary["sklearn_version"] == sklearn.__version__
    assert summary["skops_version"] == skops.__version__
    assert "sklearn.linear_model._logistic.LogisticRegression" in summary["types"]
    json.dumps(summary)


@pytest.mark.parametrize("fmt", ["joblib", "pickle"])
def test_model_summary_of_a_pipeline_reads_its_first_step(tmp_path: Path, fmt: str) -> None:
    summary = model_summary(save(scaled_pipeline(), tmp_path, fmt), fmt)

    assert summary["estimator"] == "Pipeline"
    assert summary["n_features"] == 4
    assert summary["feature_names"] is None
    assert summary["problem"] is None


def test_model_summary_of_onnx_describes_the_graph(tmp_path: Path) -> None:
    summary = model_summary(save(classifier(), tmp_path, "onnx", zipmap=False), "onnx")

    assert summary["n_features"] == 4
    assert summary["onnx"]["inputs"] == [{"name": "X", "kind": "tensor", "element_type": "float", "shape": (None, 4)}]
    assert [output["name"] for output in summary["onnx"]["outputs"]] == ["label", "probabilities"]
    assert summary["onnx"]["class_labels"] == [0, 1, 2]
    assert summary["onnx"]["producer"].startswith("skl2onnx")


def test_client_side_reads_model_files_without_scikit_learn_or_numpy(tmp_path: Path) -> None:
    """1. Save a model in each format.
    2. In a fresh interpreter where importing numpy, sklearn, skops, joblib or onnx fails, detect each format,
       infer its requirements, summarize it and build its service spec.
    """
    paths = [save(classifier(), tmp_path, fmt) for fmt in ("skops", "joblib", "pickle", "onnx")]
    script = (
        "import sys, json\n"
        "for name in ('numpy', 'sklearn', 'skops', 'joblib', 'onnx', 'onnxruntime', 'scipy'):\n"
        "    sys.modules[name] = None\n"
        "from fnserve.models import detect_format, infer_requirements, model_service, model_summary\n"
        "answers = []\n"
        "for path in sys.argv[1:]:\n"
        "    fmt = detect_format(path)\n"
        "    spec = model_service(path, name='iris').spec\n"
        "    answers.append([fmt.value, infer_requirements(path, fmt), model_summary(path, fmt)['n_features'],\n"
        "                    [endpoint.key for endpoint in spec.endpoints]])\n"
        "print(json.dumps(answers))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    routes = ["POST /predict", "POST /api/v1.0/predict/", "GET /schema", "GET /api/v1.0/health/status/"]
    assert answers == [
        ["skops", ["numpy", SKLEARN, f"skops>={skops.__version__}"], 4, routes],
        ["joblib", ["joblib", NUMPY, SKLEARN], 4, routes],
        ["pickle", [NUMPY, SKLEARN], 4, routes],
        ["onnx", ["numpy", "onnxruntime"], 4, routes],
    ]


def test_a_pickle_is_scanned_without_running_it(tmp_path: Path) -> None:
    """A pickle that would run a command when loaded is only read: the command never runs."""
    marker = tmp_path / "ran"
    path = tmp_path / "model.pkl"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (subprocess.call, (f"touch {marker}",))

    path.write_bytes(pickle.dumps(Payload()))

    assert infer_requirements(path, "pickle") == []
    assert model_summary(path, "pickle")["estimator_class"] == "subprocess.call"
    assert not marker.exists()


def test_generated_entrypoint_deploys_like_any_project(tmp_path: Path) -> None:
    """1. Save a model and write the generated app.py beside it, under a name with quotes in it.
    2. In a fresh interpreter, load `app.py:service` the way `fnserve deploy` does (sdk.loader.load_target).
    3. Its spec carries the options and requirements; calling it loads the model and predicts.
    """
    path = save(classifier(), tmp_path, "skops", name="it's")
    requirements = infer_requirements(path, "skops")
    source = entrypoint_source(path.name, name="iris", fmt="skops", proba=True, requirements=requirements)
    (tmp_path / ENTRYPOINT_FILE).write_text(source)
    script = (
        "import json, sys\n"
        "from fnserve.sdk.loader import load_target\n"
        "service, root, entrypoint = load_target(sys.argv[1])\n"
        "answer = service().predict(rows=[[5.1, 3.5, 1.4, 0.2]])\n"
        "print(json.dumps([entrypoint, service.spec.requirements, sorted(answer)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / TARGET)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["app:service", requirements, ["classes", "predictions", "probabilities"]]


def test_generated_entrypoint_refuses_values_that_are_not_plain() -> None:
    with pytest.raises(SpecError, match=r"model_file must be a bare file name"):
        entrypoint_source("../model.skops", name="iris", fmt="skops")
    with pytest.raises(SpecError, match=r"trusted_types must be a list of strings"):
        entrypoint_source("model.skops", name="iris", fmt="skops", trusted_types="sklearn.tree._tree.Tree")

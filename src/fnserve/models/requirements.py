"""The pip requirements a replica needs to load a model file, inferred from the file alone (standard library only).

skops: `skops>=` the version that saved it, and each package its object tree names, scikit-learn pinned to the
`_sklearn_version` its estimators record. joblib and pickle: the packages its GLOBAL/STACK_GLOBAL opcodes name
(`pickled.scan_pickle`: nothing is unpickled), scikit-learn pinned the same way, plus `joblib` (and `lz4` for an
lz4-compressed file). ONNX: `onnxruntime` and `numpy`. numpy is `numpy>=2` when the file names `numpy._core`,
which numpy 1 cannot import.
"""

from __future__ import annotations

import os

from fnserve.models.formats import ModelFormat
from fnserve.models.info import as_format, read_model_info
from fnserve.models.packages import check_importable, distribution_for, plain_version


def infer_requirements(path: str | os.PathLike[str], fmt: ModelFormat | str) -> list[str]:
    """The pip requirements that let a replica load the model file at `path`, sorted by name.

    Modules outside the known packages (`packages.PYPI_NAMES`) are left out, never guessed; `model_summary` lists
    them as `unresolved_modules`.

    Raises:
        SpecError: the file is not of format `fmt`, or names classes from `__main__` that no replica can import.

    Example:
        >>> infer_requirements("iris.skops", "skops")  # doctest: +SKIP
        ['numpy', 'scikit-learn==1.5.2', 'skops>=0.10.0']
    """
    model_format = as_format(fmt)
    if model_format is ModelFormat.onnx:
        read_model_info(path, model_format)  # a SpecError when the file is no ONNX model
        return ["numpy", "onnxruntime"]
    info = read_model_info(path, model_format)
    check_importable(info.path.name, info.types)
    pins: dict[str, str] = {}
    for module in info.modules:
        name = distribution_for(module)
        if name is not None:
            pins.setdefault(name, "")
    if model_format is ModelFormat.skops:
        version = plain_version(info.skops_version)
        pins["skops"] = f">={version}" if version else ""
    if model_format is ModelFormat.joblib:
        pins.setdefault("joblib", "")
        if info.compression == "lz4":
            pins["lz4"] = ""
    sklearn_version = plain_version(info.sklearn_version)
    if sklearn_version is not None:
        pins["scikit-learn"] = f"=={sklearn_version}"
    if "numpy" in pins and any(module == "numpy._core" or module.startswith("numpy._core.") for module in info.modules):
        pins["numpy"] = ">=2"
    return [name + pins[name] for name in sorted(pins)]

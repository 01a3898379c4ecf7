"""Which PyPI distribution provides a module a model file names, and which modules no replica could import.

The mapping is a fixed list of the packages saved models commonly need. A module outside it is never guessed
into a requirement: a made-up name could install anybody's package, so it is reported instead
(`unresolved_modules`), and the owner adds the requirement by hand.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from fnserve.errors import SpecError

# Import name → PyPI distribution, for the top-level packages saved models reference.
PYPI_NAMES: dict[str, str] = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "joblib": "joblib",
    "skops": "skops",
    "onnxruntime": "onnxruntime",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "imblearn": "imbalanced-learn",
    "category_encoders": "category-encoders",
    "feature_engine": "feature-engine",
    "statsmodels": "statsmodels",
    "skimage": "scikit-image",
    "umap": "umap-learn",
    "hdbscan": "hdbscan",
    "mlxtend": "mlxtend",
    "sktime": "sktime",
    "pmdarima": "pmdarima",
    "cloudpickle": "cloudpickle",
    "dill": "dill",
    "pyarrow": "pyarrow",
    "polars": "polars",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "dateutil": "python-dateutil",
    "pytz": "pytz",
}
# Modules that name the interpreter itself, whatever the Python version that saved the file.
_BUILTIN_MODULES = frozenset({"builtins", "__builtin__", "copy_reg", "exceptions"})
# A version as written into a requirement: a file could hold anything, and only a plain version may pass.
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([.+-]?[A-Za-z0-9]+)*$")


def distribution_for(module: str) -> str | None:
    """The PyPI distribution that provides `module`; None for the standard library and unknown modules."""
    return PYPI_NAMES.get(module.split(".", 1)[0])


def is_standard(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in sys.stdlib_module_names or top in _BUILTIN_MODULES


def unresolved_modules(modules: Iterable[str]) -> list[str]:
    """Top-level modules that are neither standard nor in `PYPI_NAMES`: their packages must be named by hand."""
    tops = {module.split(".", 1)[0] for module in modules}
    return sorted(top for top in tops if top != "__main__" and not is_standard(top) and top not in PYPI_NAMES)


def plain_version(version: str | None) -> str | None:
    """`version` when it is a plain version string (`1.5.2`, `1.6.dev0`), else None."""
    return version if version is not None and len(version) <= 64 and _VERSION.match(version) else None


def check_importable(file_name: str, types: Iterable[str]) -> None:
    """Raise SpecError when the file names classes defined in `__main__`, which no replica can import.

    Such classes were defined in the script that saved the model; a replica runs no such script.
    """
    stranded = sorted(name for name in types if name.startswith("__main__."))
    if stranded:
        listed = ", ".join(name.removeprefix("__main__.") for name in stranded)
        raise SpecError(
            f"model file {file_name!r} uses {listed}, defined in the script that saved it (module __main__), which "
            "a replica cannot import; move that code into an importable module and save the model again, or serve "
            "it from your own @fs.service"
        )

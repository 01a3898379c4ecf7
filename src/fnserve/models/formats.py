"""Which format a model file is in: named by its extension, confirmed by its first bytes (standard library only).

`.skops` is a zip with a `schema.json`; `.joblib`, `.pkl` and `.pickle` start with a pickle opcode (or, for joblib,
a compression header); `.onnx` parses as a protobuf ModelProto with a graph. A `.pkl` that joblib wrote (it holds
joblib's raw numpy arrays, or is compressed) is reported as joblib, since only joblib can load it.
"""

from __future__ import annotations

import enum
import mmap
import os
import pickletools
import zipfile
from pathlib import Path

from fnserve.errors import SpecError
from fnserve.models.onnx_file import looks_like_onnx
from fnserve.models.pickled import compression_of
from fnserve.models.skops_file import SCHEMA_MEMBER


class ModelFormat(enum.StrEnum):
    """How a model file was saved, and so how a replica loads it."""

    skops = "skops"
    joblib = "joblib"
    pickle = "pickle"
    onnx = "onnx"


EXTENSIONS: dict[str, ModelFormat] = {
    ".skops": ModelFormat.skops,
    ".joblib": ModelFormat.joblib,
    ".pkl": ModelFormat.pickle,
    ".pickle": ModelFormat.pickle,
    ".onnx": ModelFormat.onnx,
}
_SUPPORTED = "skops (.skops), joblib (.joblib), pickle (.pkl, .pickle) and ONNX (.onnx)"
# Opcodes a protocol 0 or 1 pickle may start with; protocol 2 and later start with PROTO (0x80).
_OLD_FIRST_OPCODES = frozenset(op.code.encode("latin-1") for op in pickletools.opcodes if op.proto <= 1)
_JOBLIB_MARK = b"NumpyArrayWrapper"


def detect_format(path: str | os.PathLike[str]) -> ModelFormat:
    """The format of the model file at `path`, from its extension, checked against its first bytes.

    Raises:
        SpecError: the file is missing, its extension is not a model format's, or its content does not match it.

    Example:
        >>> detect_format("iris.skops")  # doctest: +SKIP
        <ModelFormat.skops: 'skops'>
    """
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"model file {str(file)!r} does not exist or is not a file")
    claimed = EXTENSIONS.get(file.suffix.lower())
    if claimed is None:
        raise SpecError(
            f"model file {file.name!r} has no known model extension; fnserve serves {_SUPPORTED} files. "
            f"{_content_hint(file)}"
        )
    found = _content_format(file)
    if found is claimed or (claimed is ModelFormat.pickle and found is ModelFormat.joblib):
        return found
    if found is ModelFormat.pickle and claimed is ModelFormat.joblib:
        return ModelFormat.joblib  # joblib loads plain pickles too
    raise SpecError(
        f"model file {file.name!r} is named like a {claimed.value} file but its content is not one. "
        f"{_content_hint(file, found)}"
    )


def _content_format(path: Path) -> ModelFormat | None:
    with path.open("rb") as file:
        head = file.read(8)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            return None
        return ModelFormat.skops if SCHEMA_MEMBER in names else None
    if compression_of(head) is not None:
        return ModelFormat.joblib
    if (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head[:1] in _OLD_FIRST_OPCODES:
        return ModelFormat.joblib if _holds_joblib_arrays(path) else ModelFormat.pickle
    if looks_like_onnx(path):
        return ModelFormat.onnx
    return None


def _holds_joblib_arrays(path: Path) -> bool:
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return mapped.find(_JOBLIB_MARK) != -1


def _content_hint(path: Path, found: ModelFormat | None = None) -> str:
    if found is None:
        found = _content_format(path)
    if found is None:
        return f"Its content is none of {_SUPPORTED}; save the model with skops.io.dump, joblib.dump or as ONNX."
    extension = next(extension for extension, fmt in EXTENSIONS.items() if fmt is found)
    return f"Its content looks like {found.value}: rename it to end in {extension!r}."

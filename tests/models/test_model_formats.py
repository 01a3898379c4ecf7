"""Format detection: a model file's extension, confirmed by its first bytes."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import pytest
from _model_files import classifier, save

from fnserve.errors import SpecError
from fnserve.models import ModelFormat, detect_format


@pytest.mark.parametrize("fmt", ["skops", "joblib", "pickle", "onnx"])
def test_detect_format_names_each_format_from_extension_and_content(tmp_path: Path, fmt: str) -> None:
    path = save(classifier(), tmp_path, fmt)

    assert detect_format(path) is ModelFormat(fmt)
    assert detect_format(str(path)) is ModelFormat(fmt)


def test_detect_format_accepts_the_pickle_extension_and_any_case(tmp_path: Path) -> None:
    path = tmp_path / "model.PICKLE"
    path.write_bytes(pickle.dumps(classifier()))

    assert detect_format(path) is ModelFormat.pickle


def test_detect_format_reports_joblib_for_a_pkl_that_joblib_wrote(tmp_path: Path) -> None:
    """joblib writes numpy arrays raw beside the pickle stream: only joblib.load can read such a .pkl."""
    path = tmp_path / "model.pkl"
    joblib.dump(classifier(), path)

    assert detect_format(path) is ModelFormat.joblib


@pytest.mark.parametrize("compression", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_detect_format_reads_compressed_joblib_files(tmp_path: Path, compression: str) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(classifier(), path, compress=(compression, 3))

    assert detect_format(path) is ModelFormat.joblib


def test_detect_format_refuses_an_unknown_extension_naming_the_supported_formats(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps(classifier()))

    with pytest.raises(SpecError, match=r"'model.bin' has no known model extension") as refused:
        detect_format(path)
    message = str(refused.value)
    assert "skops (.skops), joblib (.joblib), pickle (.pkl, .pickle) and ONNX (.onnx)" in message
    assert "looks like pickle: rename it to end in '.pkl'" in message


def test_detect_format_refuses_content_that_does_not_match_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(classifier()))

    with pytest.raises(SpecError, match=r"'model.skops' is named like a skops file but its content is not one"):
        detect_format(path)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x08\x99\x99\x99"])
def test_detect_format_refuses_an_onnx_file_that_is_no_onnx_model(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)

    with pytest.raises(SpecError, match=r"content is none of skops .* save the model with skops.io.dump"):
        detect_format(path)


def test_detect_format_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"model file '.*missing.skops' does not exist"):
        detect_format(tmp_path / "missing.skops")

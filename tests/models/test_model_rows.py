"""Rows to feature matrix, and the readers' behaviour on damaged files: pure functions, no model needed."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from fnserve.errors import SpecError, ValidationFailed
from fnserve.models import ModelSchema, model_summary, rows_to_matrix
from fnserve.models.pickled import scan_pickle


def test_rows_become_a_matrix_in_feature_order() -> None:
    schema = ModelSchema(feature_names=("a", "b", "c"))

    assert rows_to_matrix([[1, 2.5, 3], {"c": 6, "a": 4, "b": 5}], schema) == [[1, 2.5, 3], [4, 5, 6]]


def test_rows_of_a_model_of_unknown_width_must_agree_with_each_other() -> None:
    schema = ModelSchema()

    assert rows_to_matrix([[1, 2], [3, 4]], schema) == [[1, 2], [3, 4]]
    with pytest.raises(ValidationFailed, match=r"row 1 has 3 values but the rows before it have 2"):
        rows_to_matrix([[1, 2], [3, 4, 5]], schema)


def test_a_long_list_of_feature_names_is_cut_in_messages() -> None:
    names = tuple(f"f{index}" for index in range(30))
    schema = ModelSchema(feature_names=names)

    assert schema.n_features == 30
    assert schema.describe() == "30 features (" + ", ".join(names[:20]) + ", and 10 more)"
    with pytest.raises(ValidationFailed, match=r"row 0 lacks features f0, f1, .*f19 and 10 more"):
        rows_to_matrix([{}], schema)


def test_one_feature_reads_in_the_singular() -> None:
    with pytest.raises(ValidationFailed, match=r"each row needs 1 feature \(x\), got 2 in row 0"):
        rows_to_matrix([[1, 2]], ModelSchema(feature_names=("x",)))


def test_a_truncated_pickle_is_reported_with_what_was_read(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"model": Path("weights.bin"), "sizes": list(range(50))}, protocol=4)[:-12])

    scan = scan_pickle(path, joblib=False)

    assert scan.root is None
    assert scan.error is not None
    assert model_summary(path, "pickle")["problem"] == scan.error


def test_a_file_that_is_no_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x05\xff\xff\xff")

    with pytest.raises(SpecError, match=r"'model.pkl' is not a readable pickle file"):
        model_summary(path, "pickle")

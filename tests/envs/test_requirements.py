"""Requirement sets as written by users: checked, read from a project, reduced to the key of their build."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnserve.envs.requirements import normalized, parse_requirements_text, project_requirements, requirements_key


def test_the_same_set_in_another_order_or_spelling_has_the_same_key() -> None:
    assert requirements_key(["numpy>=2", "six==1.16.0"], "3.11") == requirements_key(
        ["six==1.16.0 ", "numpy >= 2"], "3.11"
    )
    assert requirements_key(["six"], "3.11") != requirements_key(["six"], "3.12")


def test_fnserve_itself_is_left_to_the_runtime() -> None:
    assert normalized(["fnserve>=0.1", "six==1.16.0", "FnServe"]) == ["six==1.16.0"]


def test_requirements_txt_skips_comments_and_refuses_pip_options_naming_the_line() -> None:
    text = "# models\nscikit-learn==1.9.1  # pinned\n\nnumpy>=2\n"
    assert parse_requirements_text(text, source="requirements.txt") == ["scikit-learn==1.9.1", "numpy>=2"]

    with pytest.raises(ValueError, match="requirements.txt line 2: '-r other.txt' is a pip option"):
        parse_requirements_text("six\n-r other.txt\n", source="requirements.txt")
    with pytest.raises(ValueError, match=r"requirements.txt: requirements\[0\] 'six>>1'"):
        parse_requirements_text("six>>1\n", source="requirements.txt")


def test_a_project_gives_requirements_txt_first_then_pyproject_dependencies(tmp_path: Path) -> None:
    assert project_requirements(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\ndependencies = ["six==1.17.0"]\n')
    assert project_requirements(tmp_path) == (["six==1.17.0"], "pyproject.toml")
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    assert project_requirements(tmp_path) == (["six==1.16.0"], "requirements.txt")


def test_a_pyproject_without_dependencies_gives_none_and_a_broken_one_says_so(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 120\n")
    assert project_requirements(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ValueError, match="pyproject.toml is not valid TOML"):
        project_requirements(tmp_path)

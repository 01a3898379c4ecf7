"""multipart/form-data into `fs.File`/`bytes` parameters over real HTTP to real replicas: fields typed as JSON
arguments are, 422 naming a missing part, the body limit as parts arrive, the Python client and `fnserve invoke -F`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _cli import fnserve
from uploads import uploads

import fnserve as fs
from fnserve.settings import Settings
from fnserve.testing import run_server


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server (body limit 100 kB) with the uploads service deployed, for the whole module."""
    settings = Settings(max_body_bytes=100_000)
    with run_server(home=tmp_path_factory.mktemp("form-home"), settings=settings, graceful_shutdown_s=2) as url:
        with fs.deploy(uploads, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


def test_file_part_goes_to_a_file_parameter_and_fields_to_typed_ones(url: str) -> None:
    files = {"image": ("cat.jpg", b"\xff\xd8meow", "image/jpeg")}

    response = httpx.post(f"{url}/uploads/describe", files=files, data={"top_k": "3"})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": "cat.jpg",
        "content_type": "image/jpeg",
        "size": 6,
        "text": "\ufffd\ufffdmeow",
        "top_k": 3,
    }


def test_several_files_and_bytes_parameters(url: str) -> None:
    files = {"left": ("a.txt", b"abc", "text/plain"), "right": ("b.bin", b"\x00\x01", "application/octet-stream")}

    response = httpx.post(f"{url}/uploads/pair", files=files, data={"separator": "|"})

    assert response.json() == {"left": "a.txt:3", "right": 2, "separator": "|"}


def test_missing_file_part_or_bad_field_is_a_422_naming_it(url: str) -> None:
    missing = httpx.post(f"{url}/uploads/describe", files={"other": ("x", b"x")}, data={"top_k": "3"})
    bad = httpx.post(f"{url}/uploads/describe", files={"image": ("x", b"x")}, data={"top_k": "many"})

    assert missing.status_code == 422
    assert "image" in missing.text
    assert bad.status_code == 422
    assert "top_k" in bad.text


def test_form_over_the_endpoint_limit_is_a_413(url: str) -> None:
    response = httpx.post(f"{url}/uploads/small", files={"data": ("x", b"x" * 100)})

    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit": 10}


def test_malformed_form_is_a_400(url: str) -> None:
    headers = {"content-type": "multipart/form-data; boundary=xyz"}

    response = httpx.post(f"{url}/uploads/describe", content=b"--xyz\r\nnot a part", headers=headers)

    assert response.status_code in (400, 422)


def test_form_to_an_endpoint_without_files_keeps_its_415(url: str) -> None:
    response = httpx.post(f"{url}/uploads/json-only", files={"x": ("x", b"1")})

    assert response.status_code == 415


def test_client_uploads_open_files_and_bytes_as_multipart(url: str, tmp_path: Path) -> None:
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(b"meow")

    with fs.get_deployment("uploads", url=url) as deployment, cat.open("rb") as image:
        described = deployment.describe(image=image, top_k=3)
        sized = deployment.size(data=b"abcd", scale=2)

    assert described == {"filename": "cat.jpg", "content_type": "image/jpeg", "size": 4, "text": "meow", "top_k": 3}
    assert sized == {"size": 8, "head": "61626364"}


def test_cli_invoke_sends_a_form(url: str, tmp_path: Path) -> None:
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(b"meow")

    done = fnserve("invoke", "uploads", "/describe", "-F", f"image=@{cat}", "-F", "top_k=3", url=url)

    assert done.returncode == 0, done.stderr
    assert '"top_k": 3' in done.stdout
    assert '"filename": "cat.jpg"' in done.stdout

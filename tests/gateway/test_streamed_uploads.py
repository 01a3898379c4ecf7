"""Large uploads to `fs.File`/`bytes` parameters streamed to the replica in parts (raw bodies and multipart), spooled
there, intact; their fields still validated (422 naming one), the endpoint's limit still a 413; small ones unchanged."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest
from _auth import owner
from _raw_http import connect, send_all
from uploads import uploads

import fnserve as fs
from fnserve.testing import run_server, wait_until


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_server(home=tmp_path_factory.mktemp("streamed-home"), graceful_shutdown_s=2) as url:
        with fs.deploy(uploads, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


def test_a_large_raw_body_arrives_intact_and_spooled(url: str) -> None:
    body = os.urandom(12 << 20)

    response = httpx.post(
        f"{url}/uploads/digest?label=4", content=body, headers={"content-type": "video/mp4"}, timeout=60
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "filename": None,
        "label": 4,
        "spooled": True,
    }


def test_a_large_multipart_file_arrives_intact_with_its_typed_field(url: str) -> None:
    body = os.urandom(9 << 20)

    response = httpx.post(
        f"{url}/uploads/digest",
        files={"upload": ("movie.mp4", body, "video/mp4")},
        data={"label": "7"},
        timeout=60,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "filename": "movie.mp4",
        "label": 7,
        "spooled": True,
    }


def test_a_large_form_with_a_bad_or_missing_part_is_a_422_naming_it(url: str) -> None:
    big = b"x" * (3 << 20)

    bad = httpx.post(f"{url}/uploads/digest", files={"upload": ("a", big)}, data={"label": "many"}, timeout=60)
    missing = httpx.post(f"{url}/uploads/digest", files={"other": ("a", big)}, timeout=60)

    assert bad.status_code == 422
    assert "label" in bad.text
    assert missing.status_code == 422
    assert "upload" in missing.text


def test_a_large_upload_over_the_endpoint_limit_is_a_413(url: str) -> None:
    raw = httpx.post(
        f"{url}/uploads/digest-small", content=b"x" * (4 << 20), headers={"content-type": "image/png"}, timeout=60
    )
    form = httpx.post(f"{url}/uploads/digest-small", files={"upload": ("a", b"x" * (4 << 20))}, timeout=60)

    for response in (raw, form):
        assert response.status_code == 413
        assert response.json()["error"]["details"] == {"limit": 3_000_000}


def test_a_large_body_to_a_bytes_parameter_is_read_whole_in_the_replica(url: str) -> None:
    body = b"\x01\x02" * (2 << 20)

    response = httpx.post(f"{url}/uploads/size", content=body, headers={"content-type": "audio/wav"}, timeout=60)

    assert response.json() == {"size": len(body), "head": "01020102"}


def test_a_small_upload_still_goes_whole_in_its_call(url: str) -> None:
    response = httpx.post(f"{url}/uploads/digest", files={"upload": ("a.txt", b"abc", "text/plain")})

    assert response.json()["spooled"] is False
    assert response.json()["size"] == 3


def test_a_client_that_leaves_mid_upload_frees_the_replica(url: str) -> None:
    """1. Send 3 MiB of a 10 MiB upload, then close.  2. The call ends (nothing in flight), the replica drops its
    spool, and the next upload is served."""
    head = (
        b"POST /uploads/digest HTTP/1.1\r\nhost: x\r\ncontent-type: video/mp4\r\n"
        + f"content-length: {10 << 20}\r\n\r\n".encode()
    )
    with connect(url) as sock:
        send_all(sock, [head, b"x" * (3 << 20)])

    def in_flight() -> str:
        metrics = httpx.get(f"{url}/metrics", headers=owner(url)).text
        return next(
            line for line in metrics.splitlines() if line.startswith('fnserve_requests_in_flight{service="uploads"')
        )

    wait_until(lambda: in_flight().endswith(" 0"), timeout_s=5)
    body = os.urandom(2 << 20)
    response = httpx.post(f"{url}/uploads/digest", content=body, headers={"content-type": "video/mp4"}, timeout=60)
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()

"""`fs.Response` and `fs.FileResponse` as endpoints build them, the `media_type` option, and their OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest
from media import media
from openapi_spec_validator import validate

import fnserve as fs
from fnserve.errors import SpecError
from fnserve.openapi import service_openapi
from fnserve.runtime.invoke import encode_result


def test_response_defaults_follow_its_content() -> None:
    assert fs.Response(b"\x00").media_type == "application/octet-stream"
    assert fs.Response("héllo").content == "héllo".encode()
    assert fs.Response("héllo").media_type == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"content": {"a": 1}}, "must be bytes or str"),
        ({"media_type": "png"}, "MIME type like 'image/png'"),
        ({"status": 99}, "from 200 to 599"),
        ({"headers": {"Content-Type": "text/html"}}, "pass media_type= instead"),
        ({"headers": {"content-length": "3"}}, "set by the server"),
        ({"headers": {"x-a": "1\r\nx-b: 2"}}, "line break"),
    ],
)
def test_response_refuses_what_it_cannot_send(kwargs: dict[str, object], match: str) -> None:
    kwargs.setdefault("content", b"")
    with pytest.raises((TypeError, ValueError), match=match):
        fs.Response(**kwargs)  # type: ignore[arg-type]


def test_file_response_reads_the_file_and_guesses_from_the_name(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x01\x02")

    plain = fs.FileResponse(path)
    named = fs.FileResponse(path, filename="cat.jpg")

    assert (plain.content, plain.media_type, plain.headers) == (b"\x01\x02", "application/octet-stream", {})
    assert named.media_type == "image/jpeg"
    assert named.headers == {"content-disposition": 'attachment; filename="cat.jpg"'}
    with pytest.raises(FileNotFoundError, match="cannot read"):
        fs.FileResponse(tmp_path / "absent.bin")


def test_json_results_stay_json_and_raw_ones_become_media_frames() -> None:
    assert encode_result({"a": 1}, what="x") == b'{"a":1}'
    assert encode_result(2**70, what="x") == str(2**70).encode()
    assert encode_result(b"\x00", what="x") == (b"\x00", "application/octet-stream", 200, [])
    assert encode_result(fs.Response("x", status=201, headers={"x-a": "1"}), what="x") == (
        b"x",
        "text/plain; charset=utf-8",
        201,
        [["x-a", "1"]],
    )


def state() -> dict[str, int]:
    return {}


def test_media_type_is_for_streaming_endpoints() -> None:
    service = fs.service(state)
    with pytest.raises(SpecError, match="is for streaming endpoints"):
        service.endpoint("/a", media_type="image/png")
    with pytest.raises(SpecError, match="MIME type like 'audio/wav'"):
        service.endpoint("/a", streaming=True, media_type="wav")


def test_openapi_shows_raw_answers_as_binary() -> None:
    document = service_openapi(media.spec)
    validate(document)

    def content(path: str, method: str = "post") -> dict[str, object]:
        return document["paths"][f"/media{path}"][method]["responses"]["200"]["content"]  # type: ignore[no-any-return]

    binary = {"schema": {"type": "string", "format": "binary"}}
    assert content("/raw") == {"application/octet-stream": binary}
    assert content("/image", "get") == {"*/*": binary}
    assert content("/speak") == {"audio/wav": binary}


def test_openapi_offers_a_raw_body_for_a_file_parameter() -> None:
    from uploads import uploads

    document = service_openapi(uploads.spec)
    validate(document)

    body = document["paths"]["/uploads/describe"]["post"]["requestBody"]
    assert body["content"]["*/*"] == {"schema": {"type": "string", "format": "binary"}}
    assert "raw bytes of `image`" in body["description"]
    assert "*/*" not in document["paths"]["/uploads/json-only"]["post"]["requestBody"]["content"]
    assert uploads.spec.endpoints[0].parameters["data"].location == "file"


def test_max_body_bytes_must_be_a_positive_number_of_bytes() -> None:
    service = fs.service(state)
    with pytest.raises(SpecError, match="max_body_bytes must be a number of bytes"):
        service.endpoint("/a", max_body_bytes=0)

    @service.endpoint("/b", max_body_bytes=1024)
    def b(data: bytes) -> int:
        return len(data)

    assert service.spec.endpoints[0].max_body_bytes == 1024


def test_openapi_shows_file_parameters_as_binary_in_a_form() -> None:
    from uploads import uploads

    document = service_openapi(uploads.spec)
    validate(document)

    form = document["paths"]["/uploads/pair"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["left"] == {"type": "string", "format": "binary"}
    assert form["properties"]["right"] == {"type": "string", "format": "binary"}
    assert form["properties"]["separator"]["type"] == "string"
    assert form["required"] == ["left", "right"]


def test_openapi_shows_a_webhook_body_as_any_bytes_and_its_arguments_in_the_query() -> None:
    from uploads import uploads

    document = service_openapi(uploads.spec)
    validate(document)

    operation = document["paths"]["/uploads/webhook"]["post"]
    assert operation["requestBody"]["content"] == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [("source", "query")]

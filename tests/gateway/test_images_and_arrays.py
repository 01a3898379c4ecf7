"""PIL images and numpy arrays in and out, over real HTTP to real replicas: a resized PNG checked pixel by pixel
(multipart with a typed field, and a raw body), a broken image and a missing field as 422s naming them, arrays as
.npy or JSON by Accept, a WAV streamed back in chunks, the Python client and `fnserve invoke -F ... -o`."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from _cli import fnserve
from PIL import Image
from vision import vision

import fnserve as fs
from fnserve.testing import run_server

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_server(home=tmp_path_factory.mktemp("vision-home"), graceful_shutdown_s=2) as url:
        with fs.deploy(vision, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


def two_colours(width: int = 64, height: int = 64) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_image_round_trip_multipart_with_a_typed_field(url: str) -> None:
    original = two_colours()

    response = httpx.post(
        f"{url}/vision/resize", files={"image": ("cat.png", png_bytes(original), "image/png")}, data={"width": "32"}
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(response.content))
    resized = Image.open(io.BytesIO(response.content))
    assert (resized.format, resized.size) == ("PNG", (32, 32))
    assert resized.getpixel((2, 2)) == RED
    assert resized.getpixel((29, 30)) == BLUE
    assert resized.tobytes() == original.resize((32, 32)).tobytes()


def test_image_round_trip_as_a_raw_body_with_query_arguments(url: str) -> None:
    response = httpx.post(
        f"{url}/vision/resize?width=8&height=4",
        content=png_bytes(two_colours()),
        headers={"content-type": "image/png"},
    )

    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (8, 4)


def test_image_answer_follows_accept(url: str) -> None:
    png = png_bytes(two_colours())

    jpeg = httpx.post(
        f"{url}/vision/invert", content=png, headers={"content-type": "image/png", "accept": "image/jpeg"}
    )
    webp = httpx.post(
        f"{url}/vision/invert", content=png, headers={"content-type": "image/png", "accept": "image/webp"}
    )

    assert (jpeg.status_code, jpeg.headers["content-type"]) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"
    assert webp.headers["content-type"] == "image/webp"
    inverted = Image.open(io.BytesIO(webp.content)).convert("RGB")
    pixel = inverted.getpixel((0, 0))  # cyan, give or take WebP's loss
    assert isinstance(pixel, tuple)
    assert all(abs(got - wanted) <= 4 for got, wanted in zip(pixel, (0, 255, 255), strict=True))


def test_broken_image_is_a_422_naming_the_parameter(url: str) -> None:
    raw = httpx.post(
        f"{url}/vision/resize?width=8", content=b"\x89PNG not really", headers={"content-type": "image/png"}
    )
    form = httpx.post(f"{url}/vision/resize", files={"image": ("x.png", b"nope", "image/png")}, data={"width": "8"})

    for response in (raw, form):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert "image" in error["message"]
        assert "not an image" in response.text


def test_multipart_missing_a_required_field_is_a_422_naming_it(url: str) -> None:
    response = httpx.post(f"{url}/vision/resize", files={"image": ("a.png", png_bytes(two_colours()), "image/png")})

    assert response.status_code == 422
    assert "width" in response.json()["error"]["message"]


def test_array_in_as_npy_and_out_as_npy_or_json_by_accept(url: str) -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    body = npy_bytes(array)
    headers = {"content-type": "application/x-npy"}

    as_npy = httpx.post(
        f"{url}/vision/scale?factor=3", content=body, headers={**headers, "accept": "application/x-npy"}
    )
    as_json = httpx.post(f"{url}/vision/scale?factor=3", content=body, headers=headers)
    from_json = httpx.post(f"{url}/vision/scale", json={"array": [[1, 2], [3, 4]], "factor": 0.5})
    from_form = httpx.post(f"{url}/vision/shape", files={"array": ("a.npy", body, "application/octet-stream")})

    assert (as_npy.status_code, as_npy.headers["content-type"]) == (200, "application/x-npy")
    returned = np.load(io.BytesIO(as_npy.content), allow_pickle=False)
    assert returned.dtype == np.float32
    assert np.array_equal(returned, array * 3)
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json() == [[0.0, 3.0, 6.0], [9.0, 12.0, 15.0]]
    assert from_json.json() == [[0.5, 1.0], [1.5, 2.0]]
    assert from_form.json() == {"shape": [2, 3], "dtype": "float32"}


def test_bad_array_is_a_422_naming_the_parameter(url: str) -> None:
    response = httpx.post(
        f"{url}/vision/scale", content=b"\x93NUMPY broken", headers={"content-type": "application/x-npy"}
    )

    assert response.status_code == 422
    assert "array" in response.json()["error"]["message"]


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A 440 Hz tone as 16-bit mono WAV."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * n / rate))) for n in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def test_wav_streams_back_in_chunks_before_the_generator_ends(url: str, tmp_path: Path) -> None:
    """1. Upload a WAV made here; the endpoint yields its first 1024 bytes, then waits for the gate file.
    2. That first chunk arrives while the generator still waits. 3. Open the gate; the rest follows, byte-exact."""
    audio = wav_bytes()
    gate = tmp_path / "gate"
    params = {"chunk_bytes": "1024", "gate": str(gate)}
    received = b""
    with httpx.stream(
        "POST", f"{url}/vision/play", params=params, content=audio, headers={"content-type": "audio/wav"}, timeout=20
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        chunks = response.iter_raw()
        while len(received) < 1024:
            received += next(chunks)
        assert not gate.exists()  # the generator is still blocked: this chunk came before its end
        gate.touch()
        for chunk in chunks:
            received += chunk

    assert received == audio
    with wave.open(io.BytesIO(received)) as played:
        assert (played.getframerate(), played.getnframes()) == (8000, 4000)


def test_client_uploads_files_images_and_arrays_and_returns_responses(url: str, tmp_path: Path) -> None:
    cat = tmp_path / "cat.png"
    cat.write_bytes(png_bytes(two_colours()))

    with fs.get_deployment("vision", url=url) as deployment, cat.open("rb") as image:
        from_file = deployment.resize(image=image, width=16)
        from_image = deployment.resize(image=two_colours(), width=4)
        array = deployment.scale(array=np.ones((2, 2)), factor=2)
        npy = deployment.scale(array=np.ones((2, 2), dtype=np.int16), factor=3, _accept="application/x-npy")

    assert isinstance(from_file, fs.Response)
    assert (from_file.media_type, from_file.status) == ("image/png", 200)
    assert "x-request-id" not in from_file.headers
    assert Image.open(io.BytesIO(from_file.content)).size == (16, 16)
    assert isinstance(from_image, fs.Response)
    assert Image.open(io.BytesIO(from_image.content)).size == (4, 4)
    assert array == [[2.0, 2.0], [2.0, 2.0]]
    assert isinstance(npy, fs.Response)
    assert npy.media_type == "application/x-npy"
    assert np.array_equal(np.load(io.BytesIO(npy.content)), np.full((2, 2), 3.0))


def test_cli_invoke_uploads_an_image_and_writes_the_answer(url: str, tmp_path: Path) -> None:
    cat, out = tmp_path / "cat.png", tmp_path / "out.png"
    cat.write_bytes(png_bytes(two_colours()))

    done = fnserve("invoke", "vision", "/resize", "-F", f"image=@{cat}", "-F", "width=12", "-o", str(out), url=url)

    assert done.returncode == 0, done.stderr
    with Image.open(out) as answer:
        assert answer.size == (12, 12)


def test_openapi_offers_file_pickers_and_names_the_answers_media_types(url: str) -> None:
    paths = httpx.get(f"{url}/vision/docs/specs.json").json()["paths"]

    resize, scale = paths["/resize"]["post"], paths["/scale"]["post"]
    binary = {"type": "string", "format": "binary"}
    assert resize["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["image"] == binary
    assert resize["requestBody"]["content"]["*/*"]["schema"] == binary
    assert scale["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["array"] == binary
    assert set(resize["responses"]["200"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert set(scale["responses"]["200"]["content"]) == {"application/json", "application/x-npy"}
    assert paths["/play"]["post"]["responses"]["200"]["content"]["audio/wav"]["schema"] == binary

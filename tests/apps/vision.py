"""PIL images and numpy arrays as parameters and return values, and a WAV streamed back in chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import fnserve as fs


@fs.service(name="vision", auth=False)
def vision() -> dict[str, str]:
    return {}


@vision.endpoint("/resize")
def resize(image: Image.Image, width: int, height: int | None = None) -> Image.Image:
    """Resize an uploaded image; the answer is a PNG (or JPEG/WebP, by Accept)."""
    return image.resize((width, height or width))


@vision.endpoint("/invert")
async def invert(image: Image.Image) -> Image.Image:
    return ImageOps.invert(image.convert("RGB"))


@vision.endpoint("/scale")
def scale(array: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """An array times `factor`: JSON, or .npy when the caller accepts application/x-npy."""
    return array * factor


@vision.endpoint("/shape")
def shape(array: np.ndarray | None = None) -> dict[str, object]:
    return {"shape": None if array is None else list(array.shape), "dtype": None if array is None else str(array.dtype)}


@vision.endpoint("/play", streaming=True, media_type="audio/wav")
def play(audio: bytes, chunk_bytes: int = 1024, gate: str | None = None) -> Iterator[bytes]:
    """Stream an uploaded WAV back in chunks; after the first, wait (at most 10 s) for the file `gate` to exist, so a
    test sees a chunk arrive before the generator has finished."""
    yield audio[:chunk_bytes]
    if gate is not None:
        deadline = time.monotonic() + 10
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    for start in range(chunk_bytes, len(audio), chunk_bytes):
        yield audio[start : start + chunk_bytes]

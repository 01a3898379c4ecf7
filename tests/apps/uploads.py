"""Endpoints that take a request's raw body: `bytes` and `fs.File` parameters, and per-endpoint body limits."""

import hashlib

import fnserve as fs


@fs.service(name="uploads", auth=False)
def uploads() -> dict[str, str]:
    return {}


@uploads.endpoint("/size")
def size(data: bytes, scale: int = 1) -> dict[str, object]:
    return {"size": len(data) * scale, "head": data[:4].hex()}


@uploads.endpoint("/describe")
async def describe(image: fs.File, top_k: int = 5) -> dict[str, object]:
    return {
        "filename": image.filename,
        "content_type": image.content_type,
        "size": image.size,
        "text": image.read().decode(errors="replace"),
        "top_k": top_k,
    }


@uploads.endpoint("/small", max_body_bytes=10)
def small(data: bytes) -> int:
    return len(data)


@uploads.endpoint("/large", max_body_bytes=300_000)
def large(data: bytes) -> int:
    return len(data)


@uploads.endpoint("/echo")
def echo(data: bytes) -> bytes:
    return data


@uploads.endpoint("/pair")
def pair(left: fs.File, right: bytes, separator: str = ",") -> dict[str, object]:
    return {"left": f"{left.filename}:{left.size}", "right": len(right), "separator": separator}


@uploads.endpoint("/webhook")
def webhook(request: fs.Request, source: str = "unknown") -> dict[str, object]:
    return {
        "method": request.method,
        "path": request.path,
        "signature": request.headers.get("x-signature"),
        "authorized": "authorization" in request.headers,
        "query": request.query,
        "body": request.body.decode(),
        "json": request.json() if request.headers.get("content-type") == "application/json" else None,
        "source": source,
    }


@uploads.endpoint("/json-only")
def json_only(x: int) -> int:
    return x


@fs.service(name="hooks")  # auth on: the token that reaches it is fnserve's, not the endpoint's
def hooks() -> dict[str, str]:
    return {}


@hooks.endpoint("/webhook")
def guarded_webhook(request: fs.Request) -> list[str]:
    return sorted(request.headers)


@uploads.endpoint("/digest", max_body_bytes=50_000_000)
def digest(upload: fs.File, label: int = 0) -> dict[str, object]:
    """Reads the file in pieces: a large one arrives spooled, not as bytes in memory."""
    hashed = hashlib.sha256()
    while piece := upload.file.read(1 << 16):
        hashed.update(piece)
    spooled = type(upload.file).__name__ != "BytesIO"
    return {
        "size": upload.size,
        "sha256": hashed.hexdigest(),
        "filename": upload.filename,
        "label": label,
        "spooled": spooled,
    }


@uploads.endpoint("/digest-small", max_body_bytes=3_000_000)
def digest_small(upload: fs.File) -> int:
    return upload.size

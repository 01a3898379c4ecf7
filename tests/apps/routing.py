"""Ray Serve's routing rules: catch-all paths, converters, trailing slashes, and classes served by `__call__`."""

import fnserve as fs


@fs.service(name="paths", auth=False)
def paths() -> dict[str, str]:
    return {}


@paths.endpoint("/api/v1.0/predict/")
def predict(x: int) -> dict[str, object]:
    return {"route": "predict", "x": x}


@paths.endpoint("/plain", method="GET")
def plain() -> dict[str, object]:
    return {"route": "plain"}


@paths.endpoint("/items/{n:int}", method="GET")
def item(n: int) -> dict[str, object]:
    return {"route": "item", "n": n}


@paths.endpoint("/files/{rest:path}", method="GET")
def files(rest: str) -> dict[str, object]:
    return {"route": "files", "rest": rest}


@paths.endpoint("/{anything:path}", method="GET")
def fallback(anything: str) -> dict[str, object]:
    return {"route": "fallback", "anything": anything}


@fs.service(name="ingress", auth=False)
class Ingress:
    """Ray Serve style: no endpoint, `__call__` takes every method and path under the prefix."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: fs.Request) -> dict[str, object]:
        self.calls += 1
        return {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
            "calls": self.calls,
        }


@fs.service(name="adder", auth=False)
class Adder:
    """`__call__` with typed JSON parameters instead of the request."""

    async def __call__(self, a: int, b: int = 0) -> int:
        return a + b

"""A Flask app with several kinds of routes, served through fnserve.apps.wsgi.WsgiApp (a WSGI app as a service): as
the module's `app` (`fnserve deploy flask_app.py:app`) and through `@fs.service` on its factory (`fs.deploy`; a Flask
app object does not pickle, its factory does)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context, url_for

import fnserve as fs


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        return f"Hello, {name}!"

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> Response:
        return jsonify(user_id=user_id, kind=type(user_id).__name__, q=request.args.get("q"))

    @app.post("/form")
    def form() -> Response:
        return jsonify(fields=request.form.to_dict(), content_type=request.mimetype)

    @app.post("/json")
    def echo_json() -> Response:
        return jsonify(got=request.get_json(), method=request.method)

    @app.get("/stream")
    def stream() -> Response:
        count = int(request.args.get("count", "3"))
        pause_s = float(request.args.get("pause_s", "0"))

        def lines() -> Iterator[str]:
            for number in range(count):
                yield f"data: line {number}\n\n"
                time.sleep(pause_s)

        return Response(stream_with_context(lines()), mimetype="text/event-stream")

    @app.get("/where")
    def where() -> Response:
        return jsonify(
            script_name=request.environ["SCRIPT_NAME"],
            path_info=request.environ["PATH_INFO"],
            url_for_hello=url_for("hello", name="x"),
            host=request.host,
        )

    @app.post("/digest")
    def digest() -> Response:
        """Reads the body a piece at a time (a large upload is never held whole)."""
        hasher = hashlib.sha256()
        size = 0
        while chunk := request.stream.read(65_536):
            hasher.update(chunk)
            size += len(chunk)
        return jsonify(size=size, sha256=hasher.hexdigest())

    @app.get("/headers")
    def headers() -> Response:
        return jsonify(x_custom=request.headers.get("x-custom"), cookie=request.headers.get("cookie"))

    @app.get("/whoami")
    def whoami() -> Response:
        return jsonify(pid=os.getpid())

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the Flask route failed")

    return app


app = create_app()


@fs.service(name="flask-app")
def flask_app() -> Flask:
    """The Flask app above, served whole: `@fs.service` on a function that returns a WSGI app."""
    return create_app()


CLOSED: list[str] = []  # what plain_wsgi's answers were closed, in the process that served them


class _Answer:
    """A WSGI answer iterable that says when it is closed (PEP 3333: the server must call `close()`)."""

    def __init__(self, name: str, chunks: list[bytes]) -> None:
        self.name = name
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        CLOSED.append(self.name)


def plain_wsgi(environ: dict[str, object], start_response: object) -> _Answer:
    """A WSGI app with no framework: `/closed` lists the answers closed so far, `/raise` lets an exception out."""
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise ValueError("the plain WSGI app failed")
    start_response("200 OK", [("content-type", "text/plain")])  # type: ignore[operator]
    if path == "/forever":  # a chunk every 50 ms until the client leaves
        return _Endless(str(path))
    body = [",".join(CLOSED).encode()] if path == "/closed" else [b"one ", b"two ", b"three"]
    return _Answer(str(path), body)


class _Endless(_Answer):
    def __init__(self, name: str) -> None:
        super().__init__(name, [])

    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield b"tick\n"
            time.sleep(0.05)


plain_wsgi_service = fs.asgi_service(plain_wsgi, name="plain-wsgi", auth=False)

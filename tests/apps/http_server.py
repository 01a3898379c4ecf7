"""A plain HTTP server on the standard library, for services run as a command (`fnserve deploy --command`): the kind of
server in any language that fnserve fronts. `--mode exit` dies at once, `--mode unhealthy` never answers /health 2xx.

    python http_server.py --port 8080 [--mode ok|exit|unhealthy]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the replica reuses its connections
    healthy = True

    def log_message(self, format: str, *args: object) -> None:
        print(f"http_server: {format % args}", flush=True)

    def answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-served-by", str(os.getpid()))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health":
            self.answer(200 if self.healthy else 503, {"healthy": self.healthy})
        elif url.path == "/whoami":
            self.answer(200, {"pid": os.getpid(), "client_port": self.client_address[1]})
        elif url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["0.5"])[0]))
            self.answer(200, {"pid": os.getpid()})
        elif url.path == "/stream":
            query = parse_qs(url.query)
            count, pause_s = int(query.get("count", ["3"])[0]), float(query.get("pause_s", ["0"])[0])
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for number in range(count):
                event = f"data: event {number}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                time.sleep(pause_s)
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/big":
            size = int(parse_qs(url.query).get("size", ["1000000"])[0])
            data = bytes(range(256)) * (size // 256) + bytes(size % 256)
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.answer(404, {"error": f"no route {url.path}"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.read_body()
        if url.path == "/sick":  # from now on /health answers 503
            type(self).healthy = False
            self.answer(200, {"healthy": False})
        elif url.path == "/v1/infer":  # the inference URL: a JSON object in, a JSON object out (jobs use it too)
            payload = json.loads(body or b"{}")
            status = payload.get("status", 200) if isinstance(payload, dict) else 200  # to answer an error
            self.answer(status, {"echo": payload, "pid": os.getpid(), "job_id": self.headers.get("fnserve-job-id")})
        else:
            self.answer(
                200,
                {
                    "method": "POST",
                    "path": url.path,
                    "query": url.query,
                    "size": len(body),
                    "body_head": body[:100].decode(errors="replace"),
                    "x_custom": self.headers.get("x-custom"),
                    "host": self.headers.get("host"),
                    "forwarded_prefix": self.headers.get("x-forwarded-prefix"),
                },
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--mode", choices=["ok", "exit", "unhealthy"], default="ok")
    args = parser.parse_args()
    if args.mode == "exit":
        print("http_server: cannot load the weights from /models/missing.bin", file=sys.stderr, flush=True)
        sys.exit(3)
    Handler.healthy = args.mode == "ok"
    if not Handler.healthy:
        print("http_server: still warming up", flush=True)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"http_server: listening on port {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

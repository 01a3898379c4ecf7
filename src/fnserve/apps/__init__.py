"""Existing apps served whole inside a replica (docs/APPS.md): an ASGI app (FastAPI, Starlette) as it is, a WSGI app
(Flask) behind `wsgi.py`, or any HTTP server run as a command behind `command.py` (docs/COMMANDS.md); `load.as_asgi`
is the one way in.

This package is the replica's side: `lifespan.py` runs the app's startup and shutdown, `asgi.py` one HTTP request,
`websocket.py` one WebSocket, `serving.py` ties them to the replica protocol's frames; `proxy.py` forwards a request
to a command's server and `reaper.py` stops that server when its replica dies. The gateway's side is
`gateway/passthrough.py` and `gateway/websocket.py`.
"""

"""Existing apps as services: what a replica serves when the service is a whole HTTP app rather than endpoints (an
ASGI app, a WSGI app run by `wsgi.py`, or any HTTP server run as a command by `command.py`)."""

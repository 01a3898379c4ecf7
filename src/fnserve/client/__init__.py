"""Talking to a server: `Client`/`AsyncClient` (the `/v1` API and invocations), `Deployment`, the CLI."""

from fnserve.client.api import AsyncClient, Client
from fnserve.client.deployment import Deployment

__all__ = ["AsyncClient", "Client", "Deployment"]

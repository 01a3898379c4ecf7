"""Talking to a server: `Client`/`AsyncClient` (the `/v1` API and invocations), `Deployment`, `Job`, the CLI."""

from fnserve.client.api import AsyncClient, Client
from fnserve.client.deployment import Deployment
from fnserve.client.jobs import AsyncJob, Job

__all__ = ["AsyncClient", "AsyncJob", "Client", "Deployment", "Job"]

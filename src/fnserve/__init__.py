"""fnserve: turn Python functions, classes and saved models into live HTTP services.

import fnserve as fs

@fs.service(replicas=2)
def greeter(message: str = "Hello, world!"):
    return {"message": message}

@greeter.endpoint("/hello")
def hello(message: str, number: int = 42) -> str:
    return f"{message} My favorite number is {number}"

client = fs.deploy(greeter)().wait()
client.hello(number=7)
"""

import importlib
import typing

from fnserve import errors
from fnserve.composition.batch import batch
from fnserve.composition.model_cache import get_multiplexed_model_id, multiplexed
from fnserve.request import Request
from fnserve.responses import FileResponse, Response
from fnserve.sdk.apps import asgi_service
from fnserve.sdk.command import command_service
from fnserve.sdk.context import JobContext
from fnserve.sdk.environment import Environment
from fnserve.sdk.service import Service, endpoint, service
from fnserve.spec import Autoscaling, Resources, RetryPolicy
from fnserve.uploads import File

if typing.TYPE_CHECKING:
    from fnserve.client.api import AsyncClient, Client
    from fnserve.client.deployment import Deployment
    from fnserve.client.jobs import AsyncJob, Job
    from fnserve.composition.handles import handle
    from fnserve.sdk.deploy import deploy, get_deployment
    from fnserve.sdk.model_deploy import deploy_model

__version__ = "0.1.0"

# The client side (httpx, and through it rich and click) loads on first use: every replica imports this
# package to run the user's service, and needs none of it; that keeps a third off each replica's start.
_LAZY = {
    "AsyncClient": "fnserve.client.api",
    "Client": "fnserve.client.api",
    "Deployment": "fnserve.client.deployment",
    "AsyncJob": "fnserve.client.jobs",
    "Job": "fnserve.client.jobs",
    "deploy": "fnserve.sdk.deploy",
    "deploy_model": "fnserve.sdk.model_deploy",
    "get_deployment": "fnserve.sdk.deploy",
    "handle": "fnserve.composition.handles",
}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fnserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AsyncClient",
    "AsyncJob",
    "Autoscaling",
    "Client",
    "Deployment",
    "Environment",
    "File",
    "FileResponse",
    "Job",
    "JobContext",
    "Request",
    "Resources",
    "Response",
    "RetryPolicy",
    "Service",
    "__version__",
    "asgi_service",
    "batch",
    "command_service",
    "deploy",
    "deploy_model",
    "endpoint",
    "errors",
    "get_deployment",
    "get_multiplexed_model_id",
    "multiplexed",
    "handle",
    "service",
]

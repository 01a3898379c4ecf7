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

from fnserve import errors
from fnserve.client.api import AsyncClient, Client
from fnserve.client.deployment import Deployment
from fnserve.client.jobs import AsyncJob, Job
from fnserve.sdk.context import JobContext
from fnserve.sdk.deploy import deploy, get_deployment
from fnserve.sdk.service import Service, endpoint, service
from fnserve.spec import Autoscaling, Resources, RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncJob",
    "Autoscaling",
    "Client",
    "Deployment",
    "Job",
    "JobContext",
    "Resources",
    "RetryPolicy",
    "Service",
    "__version__",
    "deploy",
    "endpoint",
    "errors",
    "get_deployment",
    "service",
]

"""Deploying from Python: `fs.deploy(service)(*init_args, **init_kwargs)` and `fs.get_deployment(name)`."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fnserve.archive import PackedProject, packed_project
from fnserve.client.api import Client
from fnserve.client.deployment import Deployment
from fnserve.envs.requirements import project_requirements
from fnserve.errors import SpecError
from fnserve.sdk.command import command_project
from fnserve.sdk.introspect import json_default
from fnserve.sdk.loader import dumps_by_value, dumps_init_arguments, module_name_for
from fnserve.sdk.service import Service
from fnserve.sdk.source_scan import pick_scanned
from fnserve.spec import ServiceSpec

if TYPE_CHECKING:
    from fnserve.composition.graph import Application


def with_project_requirements(spec: ServiceSpec, root: Path) -> ServiceSpec:
    """`spec`, with the project's requirements when it names neither requirements nor an environment."""
    if spec.isolated:
        return spec
    found = read_project_requirements(root)
    return spec if found is None else spec.model_copy(update={"requirements": found})


def read_project_requirements(root: Path) -> list[str] | None:
    """The project's requirements.txt, else its pyproject.toml dependencies; SpecError when they are invalid."""
    try:
        found = project_requirements(root)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return None if found is None else found[0]


def deploy(
    service: Service[Any] | Application, *, url: str | None = None, api_key: str | None = None
) -> Callable[..., Deployment]:
    """Prepare a deployment of `service`; call the result with the initializer's arguments to deploy it.

    The service travels by value (cloudpickle), so the server needs no copy of your module. The call
    returns at once with the deployment in DEPLOYING; `.wait()` blocks until it is ACTIVE.

    A graph deploys whole: a service whose `uses=[...]` holds services, or an application (`Ingress.bind(
    Model.bind())`): the services it uses are deployed first, leaves first, each waited for until ACTIVE; a cycle or
    a missing dependency fails before anything starts (docs/COMPOSITION.md). The initializer's arguments go to the
    root service; bind them with `.bind(...)` to give others theirs.

    Args:
        service: a `@fs.service`.
        url: the server (default `FNSERVE_URL` or http://127.0.0.1:8000).
        api_key: the owner key (default `FNSERVE_API_KEY`, else the key file of a server on this machine).

    Example:
        >>> client = fs.deploy(greeter)(message="Hi").wait()
        >>> client.hello(number=7)
        'Hi My favorite number is 7'
    """
    from fnserve.composition.graph import is_graph

    if is_graph(service):
        return _deploy_graph(service, url=url, api_key=api_key)
    if not isinstance(service, Service):
        raise TypeError(f"fs.deploy() takes a @fs.service or an application (Service.bind(...)), got {service!r}")

    def start(*init_args: Any, **init_kwargs: Any) -> Deployment:
        service.check_init_arguments(init_args, init_kwargs)
        client = Client(url, api_key=api_key)
        if (
            service.command is not None
        ):  # nothing to pickle: its project folder (or none) goes up, the spec says the rest
            try:
                return deploy_command(service, client)
            except BaseException:
                client.close()
                raise
        try:
            code = dumps_by_value(service, module_name=service.__module__)
        except (TypeError, pickle.PicklingError) as exc:  # an object that holds locks, weak references, sockets...
            client.close()
            raise SpecError(
                f"service {service.name!r} cannot be sent by value: {exc}. Deploy its file instead (`fnserve deploy "
                "app.py:NAME` imports it on the server), or make what does not pickle inside the service's initializer "
                "(for an app: an @fs.service function that builds and returns it)"
            ) from exc
        try:
            return submit(service, client, code_kind="pickle", code=code, init_args=init_args, init_kwargs=init_kwargs)
        except BaseException:
            client.close()  # no handle is returned, so nobody else could close its connections
            raise

    return start


def _deploy_graph(
    root: Service[Any] | Application, *, url: str | None, api_key: str | None
) -> Callable[..., Deployment]:
    from fnserve.composition.graph import Application, deploy_graph, plan

    levels = plan(root)  # a cycle fails here, before anything is sent

    def start(*init_args: Any, **init_kwargs: Any) -> Deployment:
        if isinstance(root, Application) and (init_args or init_kwargs):
            raise TypeError(f"{root.name}'s arguments are bound already (.bind(...)); call fs.deploy(app)() bare")
        if init_args or init_kwargs:
            levels[-1][0].args, levels[-1][0].kwargs = init_args, init_kwargs
        client = Client(url, api_key=api_key)

        def one(node: Any) -> Deployment:
            node.service.check_init_arguments(node.args, node.kwargs)
            code = dumps_by_value(node.service, module_name=node.service.__module__)
            return submit(
                node.service,
                client,
                code_kind="pickle",
                code=code,
                init_args=node.args,
                init_kwargs=node.kwargs,
                spec=node.spec,
            )

        try:
            return deploy_graph(levels, client, one)
        except BaseException:
            client.close()
            raise

    return start


def deploy_command(
    service: Service[Any],
    client: Client,
    *,
    replicas: int | None = None,
    keep_old: bool = False,
    on_packed: Callable[[PackedProject], None] | None = None,
) -> Deployment:
    """Deploy a command service (sdk/command.py): its project folder uploaded (an empty one when it has none), the
    project's requirements.txt as its packages when it names none, its command in the spec."""
    with tempfile.TemporaryDirectory(prefix="fnserve-command-") as empty:
        root = command_project(service) or Path(empty)
        return deploy_project(
            service, root, None, client=client, replicas=replicas, keep_old=keep_old, on_packed=on_packed
        )


def deploy_project(
    service: Service[Any],
    root: Path,
    entrypoint: str | None,
    *,
    client: Client,
    init_args: tuple[Any, ...] = (),
    init_kwargs: dict[str, Any] | None = None,
    replicas: int | None = None,
    keep_old: bool = False,
    on_packed: Callable[[PackedProject], None] | None = None,
) -> Deployment:
    """Deploy a service from a project folder: the folder is zipped to disk (less what its .gitignore and
    .fnserveignore files name), uploaded (once per content) and imported on the replica as `entrypoint` (None for a
    command service: nothing is imported, its command runs there). What `fnserve deploy app.py:service` does;
    `on_packed` hears what is uploaded. A service that names no requirements gets the
    project's own (requirements.txt, else pyproject.toml's dependencies), if it has any."""
    init_kwargs = init_kwargs or {}
    service.check_init_arguments(init_args, init_kwargs)
    spec = with_project_requirements(service.spec, root)
    with packed_project(root) as packed:
        if on_packed is not None:
            on_packed(packed)
        return submit(
            service,
            client,
            spec=spec,
            code_kind="archive",
            code=packed,
            init_args=init_args,
            init_kwargs=init_kwargs,
            entrypoint=entrypoint,
            replicas=replicas,
            keep_old=keep_old,
        )


def deploy_project_graph(
    root_target: Service[Any] | Application,
    root: Path,
    *,
    client: Client,
    init_kwargs: dict[str, Any] | None = None,
    replicas: int | None = None,
    keep_old: bool = False,
    on_packed: Callable[[PackedProject], None] | None = None,
    on_level: Callable[[list[str]], None] | None = None,
) -> Deployment:
    """`fnserve deploy app.py:app` for a graph: the project uploaded once, each service deployed from it (its own
    `module:attribute`), leaves first; `init_kwargs` and `replicas` are the root service's."""
    from fnserve.composition.graph import Application, deploy_graph, entrypoint_of, plan

    levels = plan(root_target)
    top = levels[-1][0]
    if init_kwargs:
        if isinstance(root_target, Application):
            raise SpecError(f"{top.name}'s arguments are bound already (.bind(...)); leave out --init")
        top.kwargs = init_kwargs
    entrypoints = {node.name: entrypoint_of(node.service) for level in levels for node in level}
    with packed_project(root) as packed:
        if on_packed is not None:
            on_packed(packed)

        def one(node: Any) -> Deployment:
            node.service.check_init_arguments(node.args, node.kwargs)
            return submit(
                node.service,
                client,
                spec=with_project_requirements(node.spec, root),
                code_kind="archive",
                code=packed,
                init_args=node.args,
                init_kwargs=node.kwargs,
                entrypoint=entrypoints[node.name],
                replicas=replicas if node is top else None,
                keep_old=keep_old,
            )

        return deploy_graph(levels, client, one, on_level=on_level)


def deploy_described(
    path: Path,
    attribute: str | None,
    *,
    client: Client,
    init_kwargs: dict[str, Any] | None = None,
    replicas: int | None = None,
    keep_old: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    on_packed: Callable[[PackedProject], None] | None = None,
) -> Deployment:
    """Deploy the service of a file that cannot be imported here (its packages are not installed on this machine):
    its options are read from the source, its project uploaded, and the server builds its environment and imports it
    there to read its spec (streaming the build to `on_event`); the deploy that follows finds the environment built.
    """
    root = path.resolve().parent
    scanned = pick_scanned(path, attribute)
    requirements = scanned.requirements
    if requirements is None and scanned.env is None:
        requirements = read_project_requirements(root)
    if requirements is None and scanned.env is None:
        raise SpecError(
            f"{path.name} imports packages this machine lacks, and its service names none: list them in "
            "@fs.service(requirements=[...]) or in a requirements.txt beside it, so the server can install them"
        )
    entrypoint = f"{module_name_for(path, root)}:{scanned.attribute}"
    with packed_project(root) as packed:
        if on_packed is not None:
            on_packed(packed)
        code_sha256 = client.upload(packed.path, sha256=packed.sha256)
        spec = ServiceSpec.model_validate(
            client.describe(
                code_sha256,
                entrypoint,
                requirements=requirements,
                env=scanned.env,
                python=scanned.python,
                on_event=on_event,
            )
        )
        if not spec.isolated:
            spec = spec.model_copy(update={"requirements": requirements})
        return submit(
            None,
            client,
            code_kind="archive",
            code=packed,
            init_kwargs=init_kwargs,
            entrypoint=entrypoint,
            replicas=replicas,
            keep_old=keep_old,
            spec=spec,
        )


def submit(
    service: Service[Any] | None,
    client: Client,
    *,
    code_kind: str,
    code: bytes | PackedProject,
    init_args: tuple[Any, ...] = (),
    init_kwargs: dict[str, Any] | None = None,
    entrypoint: str | None = None,
    replicas: int | None = None,
    keep_old: bool = False,
    spec: ServiceSpec | None = None,
) -> Deployment:
    """Upload the code (skipped when the server has it), add a version and deploy it. Unless `keep_old`, the
    versions already running keep serving until this one is ACTIVE, then stop (blue/green). `spec`: what to deploy,
    when it differs from the service's own (or the service could not be imported here: the server described it)."""
    if spec is None:
        assert service is not None, "give the service, or its spec"
        spec = service.spec
    if replicas is not None:
        spec = spec.model_copy(update={"replicas": replicas, "autoscaling": None})
    if (
        service is not None and service.environment is not None
    ):  # a named environment given as an object: made (or updated) first
        client.put_environment(service.environment.name, service.environment.requirements, service.environment.python)
    init_kwargs = init_kwargs or {}
    code_sha256 = client.upload(code) if isinstance(code, bytes) else client.upload(code.path, sha256=code.sha256)
    has_init = bool(init_args or init_kwargs)
    init_sha256 = client.upload(dumps_init_arguments(init_args, init_kwargs)) if has_init else None
    info = client.deploy(
        {
            "spec": spec.model_dump(mode="json"),
            "code": {"kind": code_kind, "sha256": code_sha256, "entrypoint": entrypoint},
            "init_sha256": init_sha256,
            "init_shown": {
                "args": [json_default(value) for value in init_args],
                "kwargs": {name: json_default(value) for name, value in init_kwargs.items()},
            },
            "keep_old": keep_old,
        }
    )
    return Deployment(client, info)


def get_deployment(
    service: str | Deployment, *, wait: bool | float = False, url: str | None = None, api_key: str | None = None
) -> Deployment:
    """A handle on a service that is already deployed.

    Args:
        service: its name or id, or a `Deployment` (what `fs.deploy(...)()` returned): a fresh handle on the same
            service, on the same server with the same key unless `url` or `api_key` say otherwise.
        wait: True (or seconds) blocks until it is ACTIVE.
        url: the server (default `FNSERVE_URL` or http://127.0.0.1:8000).
        api_key: the owner key (default `FNSERVE_API_KEY`, else the key file of a server on this machine).

    Example:
        >>> deployment = fs.get_deployment("greeter")  # or its id, or a Deployment
        >>> deployment.hello(number=7)
    """
    if isinstance(service, Deployment):
        url, api_key = url or service._client.url, api_key or service._client.api_key
        name_or_id = service.service_id
    elif isinstance(service, str):
        name_or_id = service
    else:
        raise TypeError(
            f"fs.get_deployment() takes a service name, a service id or a Deployment, got {type(service).__name__} "
            f"{service!r:.80}"
        )
    client = Client(url, api_key=api_key)
    try:
        deployment = Deployment(client, client.get_service(name_or_id))
        if wait:
            deployment.wait(timeout_s=60.0 if wait is True else float(wait))
    except BaseException:
        client.close()  # no handle is returned, so nobody else could close its connections
        raise
    return deployment

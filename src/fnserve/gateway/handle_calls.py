"""The server's side of handle calls: a replica's HANDLE_CALL routed to another service's replica, as a call through
the gateway would be, and the answer relayed back under the caller's call id.

No HTTP is parsed: the body is the JSON the caller's replica wrote, checked by the same validator, sent to a replica
chosen by the same steps (`Gateway.replica_for`: load balancing, the concurrency limit, scale from zero). The caller
may reach only the services its own service declares (`uses`); its connection proved at HELLO which replica it is
(composition/credentials.py), so nothing it sends can name another service's rights, and nothing here leads to the
control plane. Cancelling (a CANCEL from the caller, or its connection lost) cancels the call in the target replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from fnserve.composition.channel import REQUEST_ID_KEY, with_call_facts
from fnserve.errors import (
    FnserveError,
    Forbidden,
    InternalError,
    InvalidRequest,
    NotFound,
    ReplicaCrashed,
    ServiceDisabled,
    ServiceNotFound,
)
from fnserve.gateway.app import pick_version
from fnserve.gateway.connection import ReplicaConnection
from fnserve.gateway.router import EndpointRoute, FunctionRoute
from fnserve.gateway.service_paths import arguments_validator
from fnserve.method_names import method_names
from fnserve.responses import Response, to_frame
from fnserve.runtime.protocol import Kind
from fnserve.spec import path_parameters

if TYPE_CHECKING:
    from fnserve.controlplane.supervisor import LiveDeployment
    from fnserve.gateway.app import Gateway

logger = logging.getLogger("fnserve.gateway")

_NO_HEADERS: dict[str, Any] = {"headers": []}  # what a job submitted by a handle has for a request's headers


class HandleCalls:
    """Every replica's handle calls; the replica listener hands it their HANDLE_CALL and CANCEL frames."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.supervisor = gateway.supervisor
        self._calls: dict[ReplicaConnection, dict[int, asyncio.Task[None]]] = {}
        self._methods: dict[str, dict[str, EndpointRoute]] = {}  # version id → method name → route
        self._functions: dict[str, tuple[str, FunctionRoute[LiveDeployment]]] = {}  # name → (prefix, route)

    def frame(self, caller: ReplicaConnection, message: list[Any]) -> None:
        calls = self._calls.setdefault(caller, {})
        if message[0] == Kind.CANCEL:
            task = calls.pop(message[1], None) if len(message) > 1 else None
            if task is not None:
                task.cancel()
            return
        if not _well_formed(message):  # a replica's bug (its code may write frames): tell it, keep serving
            logger.warning("%s sent a malformed HANDLE_CALL frame: %.200r", caller.label, message)
            if len(message) > 1 and isinstance(message[1], int):
                self._error(caller, message[1], InvalidRequest("malformed HANDLE_CALL frame"))
            return
        call_id = message[1]
        task = asyncio.ensure_future(self._run(caller, *message[1:8]))
        calls[call_id] = task
        task.add_done_callback(lambda _: calls.pop(call_id, None))

    def lost(self, caller: ReplicaConnection) -> None:
        """The caller's replica is gone: its calls are cancelled, in their targets too."""
        for task in self._calls.pop(caller, {}).values():
            task.cancel()

    async def _run(
        self,
        caller: ReplicaConnection,
        call_id: int,
        target: str,
        version: int | None,
        op: str,
        name: str,
        body: bytes,
        options: dict[str, Any],
    ) -> None:
        try:
            if target not in caller.uses:
                raise Forbidden(
                    f"service {caller.service_name!r} may not call {target!r}: it is not in its uses; declare it, "
                    f"@fs.service(uses=[{target!r}, ...])",
                    details={"service": target},
                )
            live = pick_version(self._function(target), version)
            if op == "call":
                await self._call(caller, call_id, live, name, body, options)
            elif op == "submit":
                route, body, path_params = self._route(live, name, body)
                job = await self.gateway.jobs.submit(
                    live, route, body, path_params, {}, _NO_HEADERS, pinned=version is not None
                )
                caller.send_frame(Kind.RESULT, call_id, orjson.dumps({"id": job.job_id, "status": job.state.value}))
            elif op == "job":
                dispatcher = self.gateway.jobs.dispatcher
                job = await dispatcher.find(name, live.function.function_id)
                await dispatcher.wait(job, min(float(options.get("wait_s") or 0.0), 60.0))
                job = await dispatcher.find(job.job_id, live.function.function_id)
                caller.send_frame(Kind.RESULT, call_id, orjson.dumps(dispatcher.describe(job)))
            else:
                raise InvalidRequest(f"unknown handle operation {op!r}")
        except asyncio.CancelledError:
            pass  # the caller gave up: the target's call was cancelled with it (connection.py)
        except ReplicaCrashed as exc:
            if caller.is_open:  # else it is the caller that is gone: nobody to tell
                self._error(caller, call_id, exc)
        except FnserveError as exc:
            self._error(caller, call_id, exc)
        except Exception:
            request_id = options.get(REQUEST_ID_KEY)
            logger.exception("Handle call [%s] from %s to %s.%s failed", request_id, caller.label, target, name)
            self._error(caller, call_id, InternalError(f"internal error; the server log has request {request_id}"))

    async def _call(
        self,
        caller: ReplicaConnection,
        call_id: int,
        live: LiveDeployment,
        name: str,
        body: bytes,
        options: dict[str, Any],
    ) -> None:
        route, body, path_params = self._route(live, name, body)
        streaming = route.spec.streaming
        wanted = options.get("stream")
        if wanted is not None and wanted != streaming:
            hint = "iterate over it: `async for chunk in ...`" if streaming else "await it, not `async for`"
            raise InvalidRequest(f"{live.name}.{name} {'streams' if streaming else 'does not stream'}; {hint}")
        timeout_s = route.spec.request_timeout_s or self.gateway.timeout_s
        left_s = options.get("timeout_s")  # what is left of the caller's own deadline
        if left_s is not None and (timeout_s is None or left_s < timeout_s):
            timeout_s = left_s
        context = None
        if live.spec.uses:  # it calls on in turn: the request id and the deadline go along
            context = with_call_facts(None, options.get(REQUEST_ID_KEY) or "", route.spec, timeout_s)
        replica = await self.gateway.replica_for(live)
        if streaming:
            batches = replica.stream(route.index, body, path_params, {}, context)
            try:
                async for batch in batches:
                    for chunk in batch:
                        caller.send_frame(Kind.CHUNK, call_id, chunk)
            finally:
                with contextlib.suppress(BaseException):
                    await batches.aclose()  # type: ignore[attr-defined]
            caller.send_frame(Kind.END, call_id)
            return
        result = await replica.call(route.index, body, path_params, {}, timeout_s, context=context)
        if result.__class__ is bytes:
            caller.send_frame(Kind.RESULT, call_id, result)
        else:
            assert isinstance(result, Response)
            caller.send_frame(Kind.MEDIA, call_id, *(to_frame(result) or ()))

    def _function(self, name: str) -> FunctionRoute[LiveDeployment]:
        """The running service called `name`: one dict lookup once found, as long as its prefix is its own."""
        prefixes = self.supervisor.prefixes
        found = self._functions.get(name)
        if found is None or prefixes.get(found[0]) is not found[1]:
            found = next(((p, f) for p, f in prefixes.items() if f.name == name), None)
            if found is None:
                raise ServiceNotFound(f"no service {name!r} is deployed; deploy it (fnserve deploy)")
            self._functions[name] = found
        function = found[1]
        if function.disabled:
            raise ServiceDisabled(f"Service {name!r} is disabled by its owner, so it takes no calls")
        return function

    def _route(self, live: LiveDeployment, name: str, body: bytes) -> tuple[EndpointRoute, bytes, dict[str, str]]:
        """The endpoint a method name stands for (named as the Python client names it), its body checked as the
        gateway checks a call's: path parameters taken out of the arguments."""
        routes = self._methods.get(live.version.version_id)
        if routes is None:
            described = [{"path": e.path, "method": e.method, "key": e.key} for e in live.spec.endpoints]
            routes = {
                method: route
                for method, endpoint in method_names(described).items()
                if (route := live.routes.find(endpoint["key"])) is not None
            }
            self._methods[live.version.version_id] = routes
        route = routes.get(name)
        if route is None:
            raise NotFound(
                f"service {live.name!r} has no endpoint {name}(); its endpoints: {', '.join(routes) or 'none'}",
                details={"service": live.name},
            )
        if route.spec.request_parameter is not None:
            raise InvalidRequest(
                f"{live.name}.{name}() takes the HTTP request itself ({route.spec.request_parameter}: fs.Request), "
                "which a handle call does not have; call it over HTTP"
            )
        path_params: dict[str, str] = {}
        names = path_parameters(route.spec.path)
        if names:
            arguments = _arguments(body)
            for parameter in names:
                if parameter in arguments:
                    path_params[parameter] = str(arguments.pop(parameter))
                elif not route.spec.path.endswith(f"{{{parameter}:path}}"):
                    raise InvalidRequest(f"missing path argument {parameter!r} for {live.name}.{name}()")
                else:
                    path_params[parameter] = ""
            body = orjson.dumps(arguments)
        validator = arguments_validator(live, route)
        if validator is not None:
            validator.validate_request(body, path_params, {})
        return route, body, path_params

    @staticmethod
    def _error(caller: ReplicaConnection, call_id: int, exc: FnserveError) -> None:
        with contextlib.suppress(ReplicaCrashed):
            caller.send_frame(Kind.ERROR, call_id, exc.code, exc.message, exc.details)


def _well_formed(message: list[Any]) -> bool:
    return (
        len(message) == 8
        and isinstance(message[1], int)
        and isinstance(message[2], str)
        and (message[3] is None or isinstance(message[3], int))
        and isinstance(message[4], str)
        and isinstance(message[5], str)
        and isinstance(message[6], bytes)
        and isinstance(message[7], dict)
    )


def _arguments(body: bytes) -> dict[str, Any]:
    try:
        arguments = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"handle call arguments are not JSON ({exc})") from None
    if not isinstance(arguments, dict):
        raise InvalidRequest("handle call arguments must be keyword arguments")
    return arguments

"""Routing without I/O: which service a path belongs to, which endpoint it names, which replica gets it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from fnserve.errors import MethodNotAllowed, NotFound
from fnserve.spec import EndpointSpec, ServiceSpec, path_parameters


@dataclass(frozen=True)
class EndpointRoute:
    index: int  # position in the spec; the replica protocol names endpoints by it
    spec: EndpointSpec
    # Decided once here, so a JSON endpoint's call pays one test for them: its body may be something else than JSON
    # arguments (a file parameter: a raw body or a form; an fs.Request parameter: any body).
    takes_other_bodies: bool = field(init=False)

    def __post_init__(self) -> None:
        other = self.spec.request_parameter is not None or bool(self.spec.file_parameters)
        object.__setattr__(self, "takes_other_bodies", other)


class ServiceRoutes:
    """The endpoints of one service, matched by method and the path after the route prefix."""

    def __init__(self, spec: ServiceSpec) -> None:
        self._by_key = {
            endpoint.key: EndpointRoute(index=i, spec=endpoint) for i, endpoint in enumerate(spec.endpoints)
        }
        self._static: dict[str, dict[str, EndpointRoute]] = {}
        self._templated: list[tuple[re.Pattern[str], dict[str, EndpointRoute]]] = []
        templates: dict[str, dict[str, EndpointRoute]] = {}
        for index, endpoint in enumerate(spec.endpoints):
            route = EndpointRoute(index=index, spec=endpoint)
            if path_parameters(endpoint.path):
                templates.setdefault(endpoint.path, {})[endpoint.method] = route
            else:
                self._static.setdefault(endpoint.path, {})[endpoint.method] = route
        for template, methods in templates.items():
            pattern = "^" + re.sub(r"\\\{([A-Za-z_][A-Za-z0-9_]*)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            self._templated.append((re.compile(pattern), methods))

    def find(self, key: str) -> EndpointRoute | None:
        """The endpoint declared as `key` ("METHOD /path"), as a job names it."""
        return self._by_key.get(key)

    def only(self) -> EndpointRoute | None:
        """The service's one endpoint, when it has exactly one."""
        return next(iter(self._by_key.values())) if len(self._by_key) == 1 else None

    def match(self, method: str, path: str) -> tuple[EndpointRoute, dict[str, str]]:
        """The endpoint for `method path` and its path parameters; NotFound or MethodNotAllowed otherwise."""
        methods = self._static.get(path)
        params: dict[str, str] = {}
        if methods is None:
            for pattern, candidate in self._templated:
                found = pattern.match(path)
                if found is not None:
                    methods, params = candidate, found.groupdict()
                    break
        if methods is None:
            raise NotFound(f"No endpoint at {path!r}; see this service's routes at /-/routes")
        route = methods.get(method)
        if route is None:
            allowed = ", ".join(sorted(methods))
            raise MethodNotAllowed(
                f"{path!r} does not accept {method}; it accepts {allowed}", details={"allow": sorted(methods)}
            )
        return route, params


class HasLoad(Protocol):
    @property
    def in_flight(self) -> int: ...


L = TypeVar("L", bound=HasLoad)


class ReplicaPicker(Generic[L]):
    """Least requests in flight; ties go round-robin so equal replicas share the load."""

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, replicas: list[L]) -> L | None:
        count = len(replicas)
        if count <= 1:
            return replicas[0] if replicas else None
        self._turn = (self._turn + 1) % count
        best = replicas[self._turn]
        for offset in range(1, count):
            candidate = replicas[(self._turn + offset) % count]
            if candidate.in_flight < best.in_flight:
                best = candidate
        return best


T = TypeVar("T")


class PrefixTable(Generic[T]):
    """Route prefixes → services, by longest prefix on segment boundaries (`/api` matches `/api/x`, not `/apix`)."""

    def __init__(self) -> None:
        self._entries: dict[str, T] = {}

    def __contains__(self, prefix: str) -> bool:
        return prefix in self._entries

    def get(self, prefix: str) -> T | None:
        return self._entries.get(prefix)

    def set(self, prefix: str, value: T) -> None:
        self._entries[prefix] = value

    def remove(self, prefix: str) -> None:
        self._entries.pop(prefix, None)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def resolve(self, path: str) -> tuple[T, str] | None:
        """The service owning `path` and the rest of the path after its prefix ('/' when nothing is left)."""
        candidate = path.rstrip("/") or "/"
        while True:
            value = self._entries.get(candidate)
            if value is not None:
                rest = path[len(candidate) :] if candidate != "/" else path
                return value, rest or "/"
            if candidate == "/":
                return None
            cut = candidate.rfind("/")
            candidate = candidate[:cut] or "/"


class Servable(Protocol):
    @property
    def weight(self) -> int: ...

    @property
    def serving(self) -> bool:
        """ACTIVE: eligible for function-level traffic."""
        ...

    @property
    def ready_count(self) -> int: ...


S = TypeVar("S", bound=Servable)


class FunctionRoute(Generic[S]):
    """The deployed versions of one function behind its route prefix, and which one gets the next call.

    Function-level calls are spread over the ACTIVE versions by weight (smooth weighted round-robin, as
    nginx does); a call pinned to a version only reaches that version. A disabled function keeps its route, with no
    versions, so that its prefix stays its own and every call learns why it is not served.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.disabled = False
        self.by_number: dict[int, S] = {}
        self._serving: list[S] = []
        self._credit: dict[int, int] = {}

    @property
    def empty(self) -> bool:
        return not self.by_number

    def add(self, number: int, deployment: S) -> None:
        self.by_number[number] = deployment
        self.refresh()

    def remove(self, number: int) -> None:
        self.by_number.pop(number, None)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the ACTIVE set; call after any state or weight change."""
        self._serving = [d for _, d in sorted(self.by_number.items()) if d.serving and d.weight > 0]
        self._credit = {id(d): 0 for d in self._serving}

    def version(self, number: int) -> S | None:
        return self.by_number.get(number)

    def pick(self) -> S | None:
        """The version for the next function-level call: ACTIVE ones with a ready replica first."""
        serving = self._serving
        if len(serving) <= 1:
            return serving[0] if serving else self._fallback()
        candidates = [d for d in serving if d.ready_count > 0] or serving
        total = 0
        best: S | None = None
        credit = self._credit
        for deployment in candidates:
            key = id(deployment)
            credit[key] = credit.get(key, 0) + deployment.weight
            total += deployment.weight
            if best is None or credit[key] > credit[id(best)]:
                best = deployment
        assert best is not None
        credit[id(best)] -= total
        return best

    @property
    def newest(self) -> S | None:
        return self.by_number[max(self.by_number)] if self.by_number else None

    def _fallback(self) -> S | None:
        """No ACTIVE version: the newest one, so the caller learns why (DEPLOYING, ERROR)."""
        return self.newest

"""Routing without I/O: which service a path belongs to, which endpoint it names, which replica gets it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from fnserve.errors import MethodNotAllowed, NotFound
from fnserve.spec import (
    RESERVED_PATH_PREFIXES,
    RESERVED_PATHS,
    EndpointSpec,
    ServiceSpec,
    is_catch_all,
    path_parameters,
    path_pattern,
)


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
    """The endpoints of one service, matched by method and the path after the route prefix.

    Ray Serve's rules, decided here once per version so that a call to a static path costs one dict lookup:
    - a static path matches with or without its trailing '/' (`/predict/` and `/predict` alike), both spellings
      being keys of one dict;
    - the most specific route wins: static paths, then templated ones (`/users/{user_id}`, `{n:int}`), then
      catch-alls (`/{rest:path}`, the longest literal start first), which take every path under their start that
      nothing else matches (a class with only `__call__` is one: sdk/service.py), but never a path the service
      answers itself (spec.RESERVED_PATHS, `/-/...`);
    - a path that matches a route but not with this method goes on to the next route; 405 only when none has it.
    """

    def __init__(self, spec: ServiceSpec) -> None:
        self._by_key = {
            endpoint.key: EndpointRoute(index=i, spec=endpoint) for i, endpoint in enumerate(spec.endpoints)
        }
        declared: dict[str, dict[str, EndpointRoute]] = {}
        templates: dict[str, dict[str, EndpointRoute]] = {}
        captured: dict[str, set[str]] = {}
        for index, endpoint in enumerate(spec.endpoints):
            route = EndpointRoute(index=index, spec=endpoint)
            names = path_parameters(endpoint.path)
            if names:
                templates.setdefault(endpoint.path, {})[endpoint.method] = route
                # A placeholder the function does not take (a `__call__` that reads its `fs.Request`) is matched,
                # not sent.
                taken = names if endpoint.var_kwargs else [name for name in names if name in endpoint.parameters]
                captured.setdefault(endpoint.path, set()).update(taken)
            else:
                declared.setdefault(endpoint.path, {})[endpoint.method] = route
        self._static: dict[str, dict[str, EndpointRoute]] = dict(declared)
        for path, methods in declared.items():  # the other spelling, unless it is declared too
            if path != "/":
                self._static.setdefault(path[:-1] if path.endswith("/") else path + "/", methods)
        ordered = sorted(templates, key=lambda path: (is_catch_all(path), -len(path.partition("{")[0])))
        self._templated: list[tuple[re.Pattern[str], dict[str, EndpointRoute], bool]] = [
            (re.compile(path_pattern(path, frozenset(captured[path]))), templates[path], is_catch_all(path))
            for path in ordered
        ]

    def find(self, key: str) -> EndpointRoute | None:
        """The endpoint declared as `key` ("METHOD /path"), as a job names it."""
        return self._by_key.get(key)

    def only(self) -> EndpointRoute | None:
        """The service's one endpoint, when it has exactly one."""
        return next(iter(self._by_key.values())) if len(self._by_key) == 1 else None

    def match(self, method: str, path: str) -> tuple[EndpointRoute, dict[str, str]]:
        """The endpoint for `method path` and its path parameters; NotFound or MethodNotAllowed otherwise."""
        methods = self._static.get(path)
        if methods is not None:
            route = methods.get(method)
            if route is not None:
                return route, {}
        return self._match_templated(method, path, methods)

    def _match_templated(
        self, method: str, path: str, allowed: dict[str, EndpointRoute] | None
    ) -> tuple[EndpointRoute, dict[str, str]]:
        methods: set[str] = set(allowed or ())
        reserved: bool | None = None
        for pattern, candidates, catch_all in self._templated:
            if catch_all:
                if reserved is None:
                    reserved = path.removesuffix("/") in RESERVED_PATHS or path.startswith(RESERVED_PATH_PREFIXES)
                if reserved:
                    break  # catch-alls come last
            found = pattern.match(path)
            if found is None:
                continue
            route = candidates.get(method)
            if route is not None:
                return route, found.groupdict("")
            methods.update(candidates)
        if not methods:
            raise NotFound(f"No endpoint at {path!r}; see this service's routes at /-/routes")
        allow = sorted(methods)
        raise MethodNotAllowed(
            f"{path!r} does not accept {method}; it accepts {', '.join(allow)}", details={"allow": allow}
        )


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

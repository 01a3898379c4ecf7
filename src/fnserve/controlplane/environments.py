"""The `/v1/environments` routes (docs/ENVIRONMENTS.md): named environments, the builds on this server with their
sizes and users, removing and pruning them, and each version's build log. Owner only, as all of `/v1`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from fnserve.controlplane.building import build_log_path
from fnserve.controlplane.schemas import ERROR_RESPONSES
from fnserve.controlplane.supervisor import Supervisor
from fnserve.envs import cache
from fnserve.envs.builder import lock_key, read_meta
from fnserve.envs.requirements import check_env_name, check_python_version, check_requirements
from fnserve.envs.runtime import server_python
from fnserve.errors import InvalidRequest, NotFound, ServiceExists
from fnserve.settings import Settings
from fnserve.store import StateStore
from fnserve.store.environments import EnvironmentStore


class EnvironmentRequest(BaseModel):
    requirements: list[str] = Field(max_length=500)
    python: str | None = Field(default=None, max_length=16, description="e.g. '3.11'; default: the server's Python")


def build_environments_router(
    settings: Settings, store: StateStore, environments: EnvironmentStore, supervisor: Supervisor
) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES, tags=["environments"])
    root = settings.environments_dir

    def users_of_builds() -> dict[str, list[str]]:
        """Build key → the versions whose lock it holds ("name v3")."""
        users: dict[str, list[str]] = {}
        for function in store.list_functions():
            for version in store.list_versions(function.function_id):
                env = version.environment
                if env is not None and env.lock is not None:
                    users.setdefault(lock_key(env.lock, env.python), []).append(f"{function.name} v{version.number}")
        return users

    def running_builds() -> set[str]:
        return {live.env.key for live in supervisor.deployments.values() if live.env is not None}

    @router.get("/environments")
    async def list_environments() -> dict[str, Any]:
        """Named environments, and every environment built on this server: its size, packages, and the versions
        that use it (`running`: a deployed version runs on it now)."""

        def collect() -> dict[str, Any]:
            users = users_of_builds()
            running = running_builds()
            return {
                "environments": [record.describe() for record in environments.list()],
                "builds": [
                    {
                        "key": build.key,
                        "python": build.meta.get("python"),
                        "requirements": build.meta.get("requirements", []),
                        "packages": build.meta.get("packages"),
                        "size_bytes": build.size_bytes,
                        "built_at": build.meta.get("built_at"),
                        "build_s": build.meta.get("build_s"),
                        "used_by": users.get(build.key, []),
                        "running": build.key in running,
                    }
                    for build in cache.list_builds(root)
                ],
            }

        return await asyncio.to_thread(collect)

    @router.put("/environments/{name}")
    async def put_environment(name: str, body: EnvironmentRequest) -> dict[str, Any]:
        """Create the named environment, or replace its packages. Versions deployed before keep their own copy; the
        next deploy that names it gets the new set. Nothing is built until a service uses it."""
        try:
            check_env_name(name)
            requirements = check_requirements(body.requirements)
            if body.python is not None:
                check_python_version(body.python)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        record = await asyncio.to_thread(environments.put, name, requirements, body.python or server_python())
        return record.describe()

    @router.get("/environments/{name}")
    async def get_environment(name: str) -> dict[str, Any]:
        return (await asyncio.to_thread(environments.get, name)).describe()

    @router.delete("/environments/{name_or_key}")
    async def delete_environment(name_or_key: str) -> dict[str, Any]:
        """Remove a named environment (versions made from it keep their packages), or a build by its key: refused
        (409) while a deployed version runs on it."""
        try:
            await asyncio.to_thread(environments.delete, name_or_key)
            return {"removed": name_or_key, "kind": "environment", "freed_bytes": 0}
        except NotFound:
            pass
        path = root / name_or_key
        if name_or_key.startswith((".", "runtime-")) or "/" in name_or_key or read_meta(path) is None:
            raise NotFound(f"No environment or build named {name_or_key!r}; list them with `fnserve env ls`") from None
        if name_or_key in running_builds():
            raise ServiceExists(
                f"build {name_or_key} is in use by a deployed version; tear it down first, or run `fnserve env prune` "
                "to remove only unused builds"
            )
        freed = await asyncio.to_thread(cache.remove, path)
        return {"removed": name_or_key, "kind": "build", "freed_bytes": freed}

    @router.post("/environments/prune")
    async def prune_environments() -> dict[str, Any]:
        """Remove every build no deployed version runs on (a version deployed later rebuilds it from its lock), and
        builds a killed server left half-done."""

        def prune() -> dict[str, Any]:
            running = running_builds()
            removed, freed = [], 0
            for build in cache.list_builds(root):
                if build.key not in running:
                    freed += cache.remove(build.path)
                    removed.append(build.key)
            for path in cache.leftovers(root):
                freed += cache.remove(path)
                removed.append(path.name)
            return {"removed": removed, "freed_bytes": freed}

        return await asyncio.to_thread(prune)

    @router.get("/services/{name_or_id}/build-log")
    async def build_log(
        name_or_id: str, version: int | None = Query(default=None, description="default: the newest version")
    ) -> Response:
        """The environment build log of one version, as text: uv's own lines, kept after the build."""
        function = await asyncio.to_thread(store.get_function, name_or_id)
        versions = await asyncio.to_thread(store.list_versions, function.function_id)
        chosen = [v for v in versions if version is None or v.number == version]
        if not chosen:
            raise NotFound(
                f"{function.name} has no version {version}; list them with `fnserve versions {function.name}`"
            )
        record = chosen[-1]
        path = build_log_path(settings.home, function.name, record.number)
        if record.environment is None:
            raise NotFound(f"{function.name} v{record.number} runs in the server's environment: nothing was built")
        try:
            text = await asyncio.to_thread(path.read_text, errors="replace")
        except FileNotFoundError:
            raise NotFound(
                f"{function.name} v{record.number} has no build log yet (not deployed on this server)"
            ) from None
        return Response(text, media_type="text/plain; charset=utf-8")

    return router

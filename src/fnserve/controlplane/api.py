"""The `/v1` REST API: code, functions and their versions, deployments, and the one-call service view.

Each route documents what a success and a failure mean. Errors are rendered by the server's one
exception handler, never here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, Response

from fnserve.auth import TOKEN_HINT_CHARS, TOKEN_PREFIX, Authenticator, TokenGrant, digest, is_whole_token, new_secret
from fnserve.backends.gpus import gpu_types
from fnserve.controlplane import disabling, time_limit
from fnserve.controlplane.assets import build_assets_router
from fnserve.controlplane.describe import build_describe_router
from fnserve.controlplane.environments import build_environments_router
from fnserve.controlplane.instance_types import INSTANCE_TYPES, resolve_resources
from fnserve.controlplane.placement import check_fits
from fnserve.controlplane.schemas import (
    ERROR_RESPONSES,
    ArtifactInfo,
    BuildInfo,
    CodeRef,
    DeploymentInfo,
    DeployRequest,
    EndpointInfo,
    EnvironmentInfo,
    FunctionInfo,
    GpuInfo,
    InstanceTypeInfo,
    NewToken,
    RegisteredVersion,
    ReplicaInfo,
    ResourcesInfo,
    RevokeTokenRequest,
    RollbackRequest,
    ServiceInfo,
    ServiceVersionSummary,
    TokenInfo,
    TokenRequest,
    VersionInfo,
    VersionRequest,
)
from fnserve.controlplane.supervisor import LiveDeployment, Supervisor
from fnserve.controlplane.uploads import receive_upload
from fnserve.envs.requirements import EnvironmentSpec
from fnserve.envs.runtime import server_python
from fnserve.errors import Forbidden, InvalidRequest, NotFound, ServiceExists
from fnserve.openapi import api_description
from fnserve.sdk.loader import is_json_init
from fnserve.settings import Settings
from fnserve.spec import DeploymentSpec, Resources, ServiceSpec
from fnserve.store import (
    ArtifactStore,
    AssetStore,
    DeploymentRecord,
    DeploymentState,
    FunctionRecord,
    StateStore,
    TokenRecord,
    TokenStore,
    VersionRecord,
)
from fnserve.store.environments import EnvironmentStore
from fnserve.store.functions import RUNNING_STATES


class ControlPlane:
    """The operations behind `/v1`, shared by the REST routes and the service view."""

    def __init__(
        self,
        settings: Settings,
        supervisor: Supervisor,
        store: StateStore,
        artifacts: ArtifactStore,
        authenticator: Authenticator,
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.store = store
        self.artifacts = artifacts
        self.authenticator = authenticator
        self.tokens = TokenStore(store.engine)
        self.environments = EnvironmentStore(store.engine)
        self.assets = AssetStore(store.engine, settings.home, upload_deadline_s=settings.asset_upload_deadline_s)

    def load_tokens(self) -> None:
        """Give the authenticator every active token (at start; afterwards it is told of each change)."""
        names = {f.function_id: f.name for f in self.store.list_functions()}
        self.authenticator.load(
            (token.digest, TokenGrant(token.token_id, token.function_id, names.get(token.function_id, "?")))
            for token in self.tokens.list(active_only=True)
        )

    # -- reading -------------------------------------------------------------------------------------------------

    def state_of(self, version: VersionRecord, deployment: DeploymentRecord | None) -> DeploymentState:
        live = self.supervisor.live(version.version_id)
        if live is not None:
            return live.state
        return deployment.state if deployment is not None else DeploymentState.inactive

    def version_info(self, version: VersionRecord, deployment: DeploymentRecord | None) -> VersionInfo:
        live = self.supervisor.live(version.version_id)
        return VersionInfo(
            version_id=version.version_id,
            function_id=version.function_id,
            version=version.number,
            state=self.state_of(version, deployment).value,
            spec=version.spec,
            code=CodeRef(kind=version.code_kind, sha256=version.code_sha256, entrypoint=version.entrypoint),  # type: ignore[arg-type]
            api=live.version.api if live is not None else version.api,
            created_at=version.created_at,
            environment=EnvironmentInfo.of(version.environment),
        )

    def function_info(self, function: FunctionRecord) -> FunctionInfo:
        versions = self.store.list_versions(function.function_id)
        deployments = {d.version_id: d for d in self.store.list_deployments(function.function_id)}
        return FunctionInfo(
            function_id=function.function_id,
            name=function.name,
            description=function.description,
            tags=function.tags,
            route_prefix=versions[-1].spec.route_prefix if versions else None,
            versions=[self.version_info(v, deployments.get(v.version_id)) for v in versions],
            created_at=function.created_at,
            updated_at=function.updated_at,
        )

    def deployment_info(self, version: VersionRecord, deployment: DeploymentRecord) -> DeploymentInfo:
        live = self.supervisor.live(version.version_id)
        return DeploymentInfo(
            deployment_id=deployment.deployment_id,
            function_id=version.function_id,
            version_id=version.version_id,
            version=version.number,
            state=self.state_of(version, deployment).value,
            reason=live.reason if live is not None else deployment.reason,
            spec=deployment.spec,
            resources=resolve_resources(deployment.spec, version.spec.resources),
            replicas_ready=live.ready_count if live is not None else 0,
            replicas=_replicas(live),
            created_at=deployment.created_at,
            updated_at=deployment.updated_at,
        )

    def service_info(self, function: FunctionRecord, base_url: str) -> ServiceInfo:
        versions = self.store.list_versions(function.function_id)
        if not versions:
            raise NotFound(f"Function {function.name!r} has no version yet; deploy one")
        deployments = {d.version_id: d for d in self.store.list_deployments(function.function_id)}
        running = [
            v for v in versions if self.state_of(v, deployments.get(v.version_id)) is not DeploymentState.inactive
        ]
        # The current version is the one deployed last (after a rollback, an older number).
        running.sort(
            key=lambda v: deployments[v.version_id].deployed_at if v.version_id in deployments else v.created_at
        )
        current = running[-1] if running else versions[-1]
        deployment = deployments.get(current.version_id)
        live = self.supervisor.live(current.version_id)
        expires_at = None
        if deployment is not None and self.state_of(current, deployment) in RUNNING_STATES:
            expires_at = time_limit.expires_at(current.spec, deployment)
        prefix = current.spec.route_prefix
        service_url = base_url.rstrip("/") + (prefix if prefix != "/" else "")
        state = self.state_of(current, deployment)
        reason = live.reason if live is not None else (deployment.reason if deployment else None)
        if function.disabled:  # whatever its versions' states: it serves nothing until it is enabled
            state, reason = DeploymentState.disabled, disabling.disabled_reason(function.name)
        return ServiceInfo(
            service_id=function.function_id,
            name=function.name,
            state=state.value,
            reason=reason,
            disabled=function.disabled,
            disabled_at=function.disabled_at,
            description=function.description,
            version=current.number,
            version_id=current.version_id,
            route_prefix=prefix,
            url=service_url,
            auth=current.spec.auth,
            replicas_desired=(live.desired if live is not None else deployment.spec.min_instances) if deployment else 0,
            replicas_ready=live.ready_count if live is not None else 0,
            replicas=_replicas(live),
            build=BuildInfo.of(live.build) if live is not None and live.build is not None else None,
            endpoints=[
                EndpointInfo(
                    method=e.method,
                    path=e.path,
                    streaming=e.streaming,
                    url=service_url + e.path,
                    description=e.description,
                )
                for e in current.spec.endpoints
            ],
            versions=[
                ServiceVersionSummary(
                    version=v.number,
                    version_id=v.version_id,
                    state=self.state_of(v, deployments.get(v.version_id)).value,
                    weight=deployments[v.version_id].spec.weight if v.version_id in deployments else None,
                    replicas_ready=(lv.ready_count if (lv := self.supervisor.live(v.version_id)) else 0),
                    environment=EnvironmentInfo.of(v.environment),
                )
                for v in versions
            ],
            api=_api_of(live.version if live is not None else current),
            created_at=function.created_at,
            updated_at=max(function.updated_at, deployment.updated_at if deployment else function.updated_at),
            expires_at=expires_at,
            time_left_s=time_limit.time_left_s(expires_at),
            logs_dir=str(self.supervisor.logs_dir(function.name)),
            failed_replicas=[ReplicaInfo(**replica.describe()) for replica in live.failed_replicas] if live else [],
        )

    @staticmethod
    def token_info(token: TokenRecord, service: str) -> TokenInfo:
        return TokenInfo(
            token_id=token.token_id,
            service=service,
            label=token.label,
            hint=token.hint,
            active=token.active,
            created_at=token.created_at,
            revoked_at=token.revoked_at,
        )

    # -- changing ------------------------------------------------------------------------------------------------

    async def issue_token(self, function: FunctionRecord, label: str = "") -> NewToken:
        """Make a token for `function`: stored as a digest, usable at once, its secret returned this one time."""
        secret = new_secret(TOKEN_PREFIX)
        token = await asyncio.to_thread(
            self.tokens.create, function.function_id, label=label, digest=digest(secret), hint=secret[:TOKEN_HINT_CHARS]
        )
        self.authenticator.grant(token.digest, TokenGrant(token.token_id, function.function_id, function.name))
        return NewToken(**self.token_info(token, function.name).model_dump(), token=secret)

    async def revoke_token(self, function: FunctionRecord, token_ref: str) -> TokenInfo:
        """Revoke by token id or hint, or by the whole token (what a user holds when it leaked): matched by its
        digest, since only that is stored, and never repeated whole in an answer."""
        if is_whole_token(token_ref):
            shown, token_digest = token_ref[:TOKEN_HINT_CHARS] + "…", digest(token_ref)
            token = await asyncio.to_thread(self.tokens.revoke, function.function_id, shown, digest=token_digest)
        else:
            token = await asyncio.to_thread(self.tokens.revoke, function.function_id, token_ref)
        self.authenticator.revoke(token.token_id)
        return self.token_info(token, function.name)

    async def add_version(self, body: VersionRequest) -> tuple[FunctionRecord, VersionRecord]:
        if body.code.kind == "archive" and not body.code.entrypoint and body.spec.command is None:
            raise InvalidRequest(
                "code of kind 'archive' needs an entrypoint 'module:attribute' (or the spec a command to run)"
            )
        self.artifacts.require(body.code.sha256, what="code")
        if body.init_sha256 is not None:
            self.artifacts.require(body.init_sha256, what="initializer arguments")
        if not self.settings.dev_mode:
            self._refuse_pickles(body)
        if body.code.kind == "archive":
            await asyncio.to_thread(self.artifacts.unpacked, body.code.sha256)
        self.supervisor.check_prefix(body.spec)
        environment = await asyncio.to_thread(self.environment_of, body.spec)
        function, version = await asyncio.to_thread(
            self.store.add_version,
            body.spec,
            code_kind=body.code.kind,
            code_sha256=body.code.sha256,
            entrypoint=body.code.entrypoint,
            init_sha256=body.init_sha256,
            init_shown=body.init_shown.model_dump() if body.init_shown is not None else None,
            tags=body.tags,
            environment=environment,
        )
        self.supervisor.past_prefixes.add(version.spec.route_prefix, function.function_id)
        return function, version

    def environment_of(self, spec: ServiceSpec) -> EnvironmentSpec | None:
        """The environment a new version runs in: a copy of the named one (later changes to it do not reach this
        version), or its own requirements; None when it names neither and runs in the server's environment."""
        if spec.env is not None:
            named = self.environments.get(spec.env)
            return EnvironmentSpec(named.requirements, spec.python or named.python, env=named.name)
        if spec.requirements is not None or spec.python is not None:
            return EnvironmentSpec(spec.requirements or [], spec.python or server_python())
        return None

    def _refuse_pickles(self, body: VersionRequest) -> None:
        """Outside dev mode the server runs source it can unpack, and arguments as JSON: never a client's pickle."""
        if body.code.kind == "pickle":
            raise Forbidden(
                "this server is not in dev mode (it listens beyond loopback), so it does not run pickled code from "
                "clients; deploy the project's source with `fnserve deploy app.py:service`"
            )
        if body.init_sha256 is not None and not is_json_init(self.artifacts.head(body.init_sha256)):
            raise Forbidden(
                "this server is not in dev mode (it listens beyond loopback), so the initializer's arguments must be "
                "JSON values (str, int, float, bool, None, lists, dicts); load other objects in the initializer"
            )

    async def deploy(
        self,
        function: FunctionRecord,
        version: VersionRecord,
        spec: DeploymentSpec,
        *,
        replaces: Sequence[str] = (),
    ) -> DeploymentRecord:
        """Deploy a version; `replaces` (version ids) retire once it is ACTIVE (blue/green). A disabled service's
        version is registered DISABLED instead, to start when the service is enabled, and what it replaces retires
        at once (nothing of it runs)."""
        self.check_fits(version.spec.name, spec, version.spec.resources)  # fails before anything changes
        if function.disabled:
            reason = disabling.disabled_reason(function.name)
            deployment = await asyncio.to_thread(
                self.store.create_deployment, version, spec, state=DeploymentState.disabled, reason=reason
            )
            for version_id in replaces:
                await asyncio.to_thread(
                    self.store.set_deployment_state,
                    version_id,
                    DeploymentState.inactive,
                    f"replaced by version {version.number}",
                )
            return deployment
        deployment = await asyncio.to_thread(self.store.create_deployment, version, spec)
        await self.supervisor.deploy(function, version, deployment, replaces=replaces)
        return deployment

    async def deployed_versions(self, function: FunctionRecord) -> list[str]:
        """The version ids a new deploy of `function` replaces: those running, and those that enabling it starts."""
        running = [live.version.version_id for live in self.supervisor.live_of(function.function_id)]
        deployments = await asyncio.to_thread(self.store.list_deployments, function.function_id)
        kept = [d.version_id for d in deployments if d.state is DeploymentState.disabled]
        return running + [version_id for version_id in kept if version_id not in running]

    async def update(
        self, version: VersionRecord, deployment: DeploymentRecord, spec: DeploymentSpec
    ) -> DeploymentRecord:
        if deployment.state is DeploymentState.inactive:
            raise ServiceExists(f"version {version.number} is not deployed; create its deployment with POST")
        if spec.hardware() != deployment.spec.hardware():
            raise ServiceExists(
                "the hardware (instance_type, resources, gpu) of a running deployment cannot change; deploy the "
                "version again with the new hardware: DELETE this deployment, then POST one"
            )
        self.check_fits(version.spec.name, spec, version.spec.resources)
        updated = await asyncio.to_thread(self.store.update_deployment, version.version_id, spec)
        await self.supervisor.update(version.version_id, updated)
        return updated

    def check_fits(self, service_name: str, spec: DeploymentSpec, default: Resources) -> None:
        """Raise ValidationFailed (422) for an unknown instance type, or resources this host can never offer its
        `min_instances` replicas."""
        inventory = self.supervisor.placement.inventory
        check_fits(inventory, service_name, resolve_resources(spec, default), spec.min_instances)

    async def locate(self, function_ref: str, version_ref: str) -> tuple[FunctionRecord, VersionRecord]:
        function = await asyncio.to_thread(self.store.get_function, function_ref)
        version = await asyncio.to_thread(self.store.get_version, function.function_id, version_ref)
        return function, version

    async def deployment_of(self, version: VersionRecord) -> DeploymentRecord:
        deployment = await asyncio.to_thread(self.store.get_deployment, version.version_id)
        if deployment is None:
            raise NotFound(f"version {version.number} has never been deployed; POST a deployment for it")
        return deployment


def _api_of(version: VersionRecord) -> dict[str, Any] | None:
    """What a version's replicas reported; for an app service (a command), its spec's description until then, so
    clients know what it is (where its jobs go) before a replica ever ran."""
    if version.api is None and version.spec.http_app is not None:
        return api_description(version.spec)
    return version.api


def _replicas(live: LiveDeployment | None) -> list[ReplicaInfo]:
    return [ReplicaInfo(**replica.describe()) for replica in live.replicas.values()] if live is not None else []


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
    store, supervisor, artifacts = plane.store, plane.supervisor, plane.artifacts

    @router.put("/artifacts/{sha256}", response_model=ArtifactInfo, status_code=201, tags=["artifacts"])
    async def upload_artifact(sha256: str, request: Request, response: Response) -> ArtifactInfo:
        """Store code (a zip archive or a pickle) under its sha256, streamed to disk and hashed on the way. Uploading
        the same bytes again is a no-op (200). Fails with 400 when the bytes do not hash to `sha256`, 413 as soon as
        they pass the size limit (FNSERVE_MAX_ARTIFACT_BYTES, 512 MiB by default)."""
        upload = await asyncio.to_thread(artifacts.start_upload, sha256, max_bytes=plane.settings.max_artifact_bytes)
        created = await receive_upload(request, upload, artifacts.finish_upload, what=f"artifact {sha256}")
        if not created:
            response.status_code = 200
        return ArtifactInfo(sha256=sha256, size=upload.size, created=created)

    @router.head("/artifacts/{sha256}", tags=["artifacts"])
    async def has_artifact(sha256: str) -> Response:
        """200 when the artifact is stored (the client then skips the upload), 404 otherwise."""
        return Response(status_code=200 if artifacts.exists(sha256) else 404)

    # -- the service view: register + deploy in one call -----------------------------------------------------------

    @router.post("/services", response_model=ServiceInfo, status_code=201, tags=["services"])
    async def deploy_service(body: DeployRequest, request: Request) -> ServiceInfo:
        """Add a version of the function `spec.name` (created on first use) and deploy it with `spec.replicas`
        instances. Answers at once in DEPLOYING; poll `GET /v1/services/{name}` until ACTIVE or ERROR. The
        versions already deployed keep serving until the new one is ACTIVE, then drain and stop (blue/green),
        unless `keep_old` (traffic split). A disabled service registers the version without starting it (DISABLED);
        enabling the service starts it. When the service needs auth and has no active token, one is made and
        shown in `token`, this once. 404 when the code was not uploaded, 409 when another function owns the route
        prefix."""
        plane.check_fits(body.spec.name, DeploymentSpec.for_service(body.spec), body.spec.resources)
        function, version = await plane.add_version(body)
        old = await plane.deployed_versions(function)
        spec = DeploymentSpec.for_service(body.spec)
        await plane.deploy(function, version, spec, replaces=[] if body.keep_old else old)
        info = await asyncio.to_thread(plane.service_info, function, str(request.base_url))
        if body.spec.auth and not await asyncio.to_thread(plane.tokens.list, function.function_id, active_only=True):
            info.token = (await plane.issue_token(function, "made at deploy")).token
        return info

    @router.get("/services", response_model=list[ServiceInfo], tags=["services"])
    async def list_services(request: Request) -> list[ServiceInfo]:
        """Every function with at least one version, seen as a service."""

        def collect() -> list[ServiceInfo]:
            functions = store.list_functions()
            return [
                plane.service_info(f, str(request.base_url)) for f in functions if store.list_versions(f.function_id)
            ]

        return await asyncio.to_thread(collect)

    @router.get("/services/{name_or_id}", response_model=ServiceInfo, tags=["services"])
    async def get_service(name_or_id: str, request: Request) -> ServiceInfo:
        """One function as a service: its current version's state, replicas and endpoints, and every version."""
        function = await asyncio.to_thread(store.get_function, name_or_id)
        return await asyncio.to_thread(plane.service_info, function, str(request.base_url))

    @router.post("/services/{name_or_id}/rollback", response_model=ServiceInfo, tags=["services"])
    async def rollback_service(name_or_id: str, request: Request, body: RollbackRequest) -> ServiceInfo:
        """Deploy an earlier version again (`to`, default: the one before the current) and retire the others once
        it is ACTIVE (blue/green). 404 when there is no such version, 409 when it is the one already serving."""
        function = await asyncio.to_thread(store.get_function, name_or_id)
        current = await asyncio.to_thread(plane.service_info, function, str(request.base_url))
        if body.to is None:
            earlier = [v.version for v in current.versions if v.version < current.version]
            if not earlier:
                raise NotFound(f"{function.name} has no version before {current.version} to roll back to")
            target = max(earlier)
        else:
            target = body.to
        version = await asyncio.to_thread(store.get_version, function.function_id, target)
        deployed = await plane.deployed_versions(function)
        if version.version_id in deployed:
            raise ServiceExists(f"version {target} is already deployed; nothing to roll back")
        spec = DeploymentSpec.for_service(version.spec)
        await plane.deploy(function, version, spec, replaces=deployed)
        return await asyncio.to_thread(plane.service_info, function, str(request.base_url))

    @router.post("/services/{name_or_id}/disable", response_model=ServiceInfo, tags=["services"])
    async def disable_service(name_or_id: str, request: Request) -> ServiceInfo:
        """Stop the service's replicas (calls in flight finish first) and answer its calls, job submissions included,
        with 503 `service_disabled` until it is enabled. Its versions, tokens, deployment specs and queued jobs are
        kept, and it stays disabled across server restarts; a version deployed meanwhile is registered, not started.
        Answers once the replicas have stopped, in state DISABLED. Disabling twice is harmless."""
        function = await asyncio.to_thread(store.get_function, name_or_id)
        function = await disabling.disable(store, supervisor, function)
        return await asyncio.to_thread(plane.service_info, function, str(request.base_url))

    @router.post("/services/{name_or_id}/enable", response_model=ServiceInfo, tags=["services"])
    async def enable_service(name_or_id: str, request: Request) -> ServiceInfo:
        """Start what the service ran when it was disabled, as it was (the same versions, instance counts,
        autoscaling and weights), and let its calls through again. Answers at once in DEPLOYING; poll
        `GET /v1/services/{name}` until ACTIVE. Enabling a service that is not disabled changes nothing."""
        function = await asyncio.to_thread(store.get_function, name_or_id)
        function = await disabling.enable(store, supervisor, function)
        return await asyncio.to_thread(plane.service_info, function, str(request.base_url))

    @router.delete("/services/{name_or_id}", response_model=ServiceInfo, tags=["services"])
    async def teardown_service(name_or_id: str, request: Request) -> ServiceInfo:
        """Undeploy every version of the function (calls in flight finish first): it becomes INACTIVE and stays
        registered, so it can be deployed again. A disabled service stays disabled, with nothing left to enable."""
        function = await asyncio.to_thread(store.get_function, name_or_id)
        for live in supervisor.live_of(function.function_id):
            await supervisor.undeploy(live.version.version_id, reason="torn down")
        for deployment in await asyncio.to_thread(store.list_deployments, function.function_id):
            if deployment.state is not DeploymentState.inactive:
                await asyncio.to_thread(
                    store.set_deployment_state, deployment.version_id, DeploymentState.inactive, "torn down"
                )
        return await asyncio.to_thread(plane.service_info, function, str(request.base_url))

    # -- functions and versions -----------------------------------------------------------------------------------

    @router.post("/functions", response_model=RegisteredVersion, status_code=201, tags=["functions"])
    async def register_function(body: VersionRequest) -> RegisteredVersion:
        """Register a function with its first version (INACTIVE: not deployed). 409 when the name exists; add
        versions with `POST /v1/functions/{function}/versions`."""
        if await asyncio.to_thread(_exists, store, body.spec.name):
            raise ServiceExists(
                f"function {body.spec.name!r} already exists; add a version with POST "
                f"/v1/functions/{body.spec.name}/versions"
            )
        function, version = await plane.add_version(body)
        return RegisteredVersion(function=plane.function_info(function), version=plane.version_info(version, None))

    @router.post(
        "/functions/{function_ref}/versions", response_model=RegisteredVersion, status_code=201, tags=["functions"]
    )
    async def register_version(function_ref: str, body: VersionRequest) -> RegisteredVersion:
        """Add an immutable version to an existing function (INACTIVE). 404 when the function is unknown, 400 when
        the spec names another function."""
        function = await asyncio.to_thread(store.get_function, function_ref)
        if body.spec.name != function.name:
            raise InvalidRequest(f"spec.name is {body.spec.name!r}, but this is function {function.name!r}")
        function, version = await plane.add_version(body)
        return RegisteredVersion(function=plane.function_info(function), version=plane.version_info(version, None))

    @router.get("/functions", response_model=list[FunctionInfo], tags=["functions"])
    async def list_functions() -> list[FunctionInfo]:
        """Every function with all its versions and their states."""
        return await asyncio.to_thread(lambda: [plane.function_info(f) for f in store.list_functions()])

    @router.get("/functions/{function_ref}", response_model=FunctionInfo, tags=["functions"])
    async def get_function(function_ref: str) -> FunctionInfo:
        """One function (by name or id) with its versions."""
        function = await asyncio.to_thread(store.get_function, function_ref)
        return await asyncio.to_thread(plane.function_info, function)

    @router.get("/functions/{function_ref}/versions", response_model=list[VersionInfo], tags=["functions"])
    async def list_versions(function_ref: str) -> list[VersionInfo]:
        """A function's versions, oldest first."""
        function = await asyncio.to_thread(store.get_function, function_ref)
        return (await asyncio.to_thread(plane.function_info, function)).versions

    @router.get("/functions/{function_ref}/versions/{version_ref}", response_model=VersionInfo, tags=["functions"])
    async def get_version(function_ref: str, version_ref: str) -> VersionInfo:
        """One version, by id or number."""
        _, version = await plane.locate(function_ref, version_ref)
        deployment = await asyncio.to_thread(store.get_deployment, version.version_id)
        return plane.version_info(version, deployment)

    @router.delete("/functions/{function_ref}/versions/{version_ref}", status_code=204, tags=["functions"])
    async def delete_version(function_ref: str, version_ref: str) -> Response:
        """Remove a version that is not deployed; 409 while it is deployed."""
        _, version = await plane.locate(function_ref, version_ref)
        if supervisor.live(version.version_id) is not None:
            raise ServiceExists(f"version {version.number} is deployed; undeploy it first")
        await asyncio.to_thread(store.delete_version, version)
        return Response(status_code=204)

    # -- deployments ------------------------------------------------------------------------------------------------

    deployment_path = "/deployments/functions/{function_ref}/versions/{version_ref}"

    @router.post(deployment_path, response_model=DeploymentInfo, status_code=201, tags=["deployments"])
    async def create_deployment(function_ref: str, version_ref: str, spec: DeploymentSpec) -> DeploymentInfo:
        """Deploy a version: DEPLOYING, then ACTIVE once `min_instances` replicas are ready (at once when 0), or
        ERROR with the reason. 409 when the version is already deployed; 422 for an invalid spec."""
        function, version = await plane.locate(function_ref, version_ref)
        deployment = await plane.deploy(function, version, spec)
        return plane.deployment_info(version, deployment)

    @router.get(deployment_path, response_model=DeploymentInfo, tags=["deployments"])
    async def get_deployment(function_ref: str, version_ref: str) -> DeploymentInfo:
        """A version's deployment: state, reason, spec and per-replica health."""
        _, version = await plane.locate(function_ref, version_ref)
        return plane.deployment_info(version, await plane.deployment_of(version))

    @router.put(deployment_path, response_model=DeploymentInfo, tags=["deployments"])
    async def update_deployment(function_ref: str, version_ref: str, spec: DeploymentSpec) -> DeploymentInfo:
        """Change instance counts, concurrency and weight of a running deployment, live. Changing its hardware is a
        409 (undeploy and deploy again instead)."""
        _, version = await plane.locate(function_ref, version_ref)
        updated = await plane.update(version, await plane.deployment_of(version), spec)
        return plane.deployment_info(version, updated)

    @router.delete(deployment_path, response_model=DeploymentInfo, tags=["deployments"])
    async def delete_deployment(
        function_ref: str,
        version_ref: str,
        graceful: bool = Query(default=True, description="let calls in flight finish before stopping replicas"),
    ) -> DeploymentInfo:
        """Undeploy a version: INACTIVE. With `graceful=true` (the default) calls in flight finish first."""
        _, version = await plane.locate(function_ref, version_ref)
        deployment = await plane.deployment_of(version)
        await supervisor.undeploy(version.version_id, reason="undeployed", graceful=graceful)
        refreshed = await asyncio.to_thread(store.get_deployment, version.version_id)
        return plane.deployment_info(version, refreshed or deployment)

    # -- tokens --------------------------------------------------------------------------------------------------------

    @router.post("/functions/{function_ref}/tokens", response_model=NewToken, status_code=201, tags=["tokens"])
    async def create_token(function_ref: str, body: TokenRequest | None = None) -> NewToken:
        """Make an invocation token for one function. Its secret is in this answer only; it is stored hashed."""
        function = await asyncio.to_thread(store.get_function, function_ref)
        return await plane.issue_token(function, body.label if body is not None else "")

    @router.get("/functions/{function_ref}/tokens", response_model=list[TokenInfo], tags=["tokens"])
    async def list_tokens(function_ref: str) -> list[TokenInfo]:
        """A function's tokens, active and revoked, oldest first (never their secrets)."""
        function = await asyncio.to_thread(store.get_function, function_ref)
        tokens = await asyncio.to_thread(plane.tokens.list, function.function_id)
        return [plane.token_info(token, function.name) for token in tokens]

    @router.delete("/functions/{function_ref}/tokens/{token_ref}", response_model=TokenInfo, tags=["tokens"])
    async def revoke_token(function_ref: str, token_ref: str) -> TokenInfo:
        """Revoke a token (by id, hint, or the whole token): it stops working with the next request. Revoking twice is
        harmless. A whole token is better sent in the body of `POST .../tokens/revoke`: URLs end up in logs."""
        function = await asyncio.to_thread(store.get_function, function_ref)
        return await plane.revoke_token(function, token_ref)

    @router.post("/functions/{function_ref}/tokens/revoke", response_model=TokenInfo, tags=["tokens"])
    async def revoke_token_by_secret(function_ref: str, body: RevokeTokenRequest) -> TokenInfo:
        """Revoke a token given whole (`fst_...`, what a user holds when it leaked), matched by its digest: the secret
        is never stored. 404 when it is not one of this function's tokens. Revoking twice is harmless."""
        function = await asyncio.to_thread(store.get_function, function_ref)
        if not is_whole_token(body.token):
            raise InvalidRequest(
                f"`token` must be a whole token ({TOKEN_PREFIX}...); revoke by id with DELETE .../tokens/TOKEN_ID"
            )
        return await plane.revoke_token(function, body.token)

    # -- hardware ------------------------------------------------------------------------------------------------------

    @router.get("/instance-types", response_model=list[InstanceTypeInfo], tags=["hardware"])
    async def instance_types() -> list[InstanceTypeInfo]:
        """The named hardware presets a deployment may use as `instance_type`."""
        return [InstanceTypeInfo(name=name, resources=resources) for name, resources in INSTANCE_TYPES.items()]

    @router.get("/gpus", response_model=list[GpuInfo], tags=["hardware"])
    async def gpus() -> list[GpuInfo]:
        """The GPU types this host offers, and how many of each no replica holds (an empty list is a valid answer)."""
        inventory = supervisor.placement.inventory
        held = {index for allocation in inventory.allocations.values() for index in allocation.gpu_indexes}
        return [
            GpuInfo(
                gpu_type=name,
                count=count,
                memory_bytes=mem,
                free=sum(1 for gpu in inventory.gpus if gpu.gpu_type == name and gpu.index not in held),
            )
            for name, count, mem in gpu_types(inventory.gpus)
        ]

    @router.get("/resources", response_model=ResourcesInfo, tags=["hardware"])
    async def resources() -> ResourcesInfo:
        """This host's CPUs, memory and GPUs, what replicas hold of them, and each GPU's replicas. CPUs are shares
        (oversubscribed) unless the server was given a CPU total (`FNSERVE_CPUS`); memory and GPUs are strict."""
        return ResourcesInfo.model_validate(supervisor.placement.inventory.describe())

    return router


def _exists(store: StateStore, name: str) -> bool:
    try:
        store.get_function(name)
    except NotFound:
        return False
    return True


def build_control_plane(plane: ControlPlane) -> FastAPI:
    app = FastAPI(
        title="fnserve control plane",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url=None,  # the server serves /v1/docs itself, with Swagger UI's files from a package (no CDN)
        redoc_url=None,
    )
    app.include_router(build_router(plane))
    app.include_router(build_assets_router(plane.assets, plane.authenticator, plane.settings), prefix="/v1")
    app.include_router(
        build_environments_router(plane.settings, plane.store, plane.environments, plane.supervisor), prefix="/v1"
    )
    app.include_router(build_describe_router(plane.supervisor, plane.artifacts, plane.environments), prefix="/v1")
    return app

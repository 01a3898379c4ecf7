"""The `/v1` REST API: upload code, deploy, list, get and tear down services.

Each route documents what a success and a failure mean. Errors are rendered by the server's one
exception handler, never here.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI, Request, Response

from fnserve.controlplane.schemas import ArtifactInfo, DeployRequest, EndpointInfo, ReplicaInfo, ServiceInfo
from fnserve.controlplane.supervisor import Supervisor
from fnserve.errors import InvalidRequest, PayloadTooLarge
from fnserve.store import ArtifactStore, ServiceRecord, StateStore
from fnserve.store.artifacts import check_sha256

MAX_ARTIFACT_BYTES = 512 * 1024 * 1024


def build_router(supervisor: Supervisor, store: StateStore, artifacts: ArtifactStore) -> APIRouter:
    router = APIRouter(prefix="/v1")

    def service_info(record: ServiceRecord, request: Request) -> ServiceInfo:
        live = supervisor.live(record.name)
        base = str(request.base_url).rstrip("/")
        prefix = record.spec.route_prefix
        service_url = base + (prefix if prefix != "/" else "")
        replicas = [ReplicaInfo(**replica.describe()) for replica in live.replicas.values()] if live else []
        return ServiceInfo(
            service_id=record.service_id,
            name=record.name,
            state=(live.state if live else record.state).value,
            reason=live.reason if live else record.reason,
            description=record.spec.description,
            route_prefix=prefix,
            url=service_url,
            auth=record.spec.auth,
            replicas_desired=record.spec.replicas,
            replicas_ready=live.ready_count if live else 0,
            replicas=replicas,
            endpoints=[
                EndpointInfo(
                    method=endpoint.method,
                    path=endpoint.path,
                    streaming=endpoint.streaming,
                    url=service_url + endpoint.path,
                    description=endpoint.description,
                )
                for endpoint in record.spec.endpoints
            ],
            api=live.record.api if live else record.api,
            created_at=record.created_at,
            updated_at=(live.record if live else record).updated_at,
        )

    @router.put("/artifacts/{sha256}", response_model=ArtifactInfo, status_code=201, tags=["artifacts"])
    async def upload_artifact(sha256: str, request: Request, response: Response) -> ArtifactInfo:
        """Store code (a zip archive or a pickle) under its sha256. Uploading the same bytes again is a no-op
        (200). Fails with 400 when the bytes do not hash to `sha256`, 413 when over the size limit."""
        check_sha256(sha256)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_ARTIFACT_BYTES:
            raise PayloadTooLarge(f"artifact is over the {MAX_ARTIFACT_BYTES} byte limit; make the project smaller")
        data = await request.body()
        created = await asyncio.to_thread(artifacts.put, sha256, data)
        if not created:
            response.status_code = 200
        return ArtifactInfo(sha256=sha256, size=len(data), created=created)

    @router.head("/artifacts/{sha256}", tags=["artifacts"])
    async def has_artifact(sha256: str) -> Response:
        """200 when the artifact is stored (the client then skips the upload), 404 otherwise."""
        return Response(status_code=200 if artifacts.exists(sha256) else 404)

    @router.post("/services", response_model=ServiceInfo, status_code=201, tags=["services"])
    async def deploy(body: DeployRequest, request: Request) -> ServiceInfo:
        """Deploy a service (or new code for an existing name, replacing its replicas). Answers at once in
        DEPLOYING; poll `GET /v1/services/{name}` until ACTIVE or ERROR. Fails with 404 when the code was
        not uploaded, 409 when another service owns the route prefix."""
        if body.code.kind == "archive" and not body.code.entrypoint:
            raise InvalidRequest("code of kind 'archive' needs an entrypoint 'module:attribute'")
        artifacts.require(body.code.sha256, what="code")
        if body.init_sha256 is not None:
            artifacts.require(body.init_sha256, what="initializer arguments")
        if body.code.kind == "archive":
            await asyncio.to_thread(artifacts.unpacked, body.code.sha256)
        supervisor.check_prefix(body.spec)
        record = await asyncio.to_thread(
            store.save_service,
            body.spec,
            code_kind=body.code.kind,
            code_sha256=body.code.sha256,
            entrypoint=body.code.entrypoint,
            init_sha256=body.init_sha256,
        )
        await supervisor.deploy(record)
        return service_info(record, request)

    @router.get("/services", response_model=list[ServiceInfo], tags=["services"])
    async def list_services(request: Request) -> list[ServiceInfo]:
        """Every service the server knows, in any state."""
        records = await asyncio.to_thread(store.list_services)
        return [service_info(record, request) for record in records]

    @router.get("/services/{name_or_id}", response_model=ServiceInfo, tags=["services"])
    async def get_service(name_or_id: str, request: Request) -> ServiceInfo:
        """One service with its replicas and endpoints; 404 when no service has that name or id."""
        record = await asyncio.to_thread(store.get_service, name_or_id)
        return service_info(record, request)

    @router.delete("/services/{name_or_id}", response_model=ServiceInfo, tags=["services"])
    async def teardown(name_or_id: str, request: Request) -> ServiceInfo:
        """Stop the service's replicas, letting calls in progress finish, and mark it INACTIVE. Its record
        stays, so it can be deployed again; 404 when unknown."""
        record = await asyncio.to_thread(store.get_service, name_or_id)
        await supervisor.teardown(record.name)
        record = await asyncio.to_thread(store.get_service, record.service_id)
        return service_info(record, request)

    return router


def build_control_plane(supervisor: Supervisor, store: StateStore, artifacts: ArtifactStore) -> FastAPI:
    app = FastAPI(
        title="fnserve control plane",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    app.include_router(build_router(supervisor, store, artifacts))
    return app

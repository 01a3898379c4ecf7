"""The `/v1/assets` routes (docs/JOBS.md, "Assets"): create an asset, PUT its bytes once, read, list, delete.

The owner key may do everything. A service token makes assets for its own service and sees only those (and its
service's stored results); any other asset answers 404, exactly as an unknown one, so a token learns nothing of
assets that are not its own. The server lets these paths past its owner check; each route checks the caller here.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from fnserve.auth import Authenticator, TokenGrant
from fnserve.controlplane.schemas import ERROR_RESPONSES, AssetInfo, AssetRequest
from fnserve.controlplane.uploads import receive_upload
from fnserve.errors import AssetConflict
from fnserve.settings import Settings
from fnserve.store.assets import (
    ALL,
    AssetRecord,
    AssetState,
    AssetStore,
    asset_not_found,
)


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def asset_info(record: AssetRecord, base_url: str) -> AssetInfo:
    return AssetInfo(
        asset_id=record.asset_id,
        function_id=record.function_id,
        kind=record.kind.value,
        content_type=record.content_type,
        description=record.description,
        state=record.state.value,
        size=record.size,
        sha256=record.sha256,
        upload_url=f"{base_url.rstrip('/')}/v1/assets/{record.asset_id}/content",
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        uploaded_at=_at(record.uploaded_at),
        expires_at=_at(record.expires_at),
    )


def build_assets_router(assets: AssetStore, authenticator: Authenticator, settings: Settings) -> APIRouter:
    """The asset routes, to be included under `/v1`."""
    router = APIRouter(responses=ERROR_RESPONSES, tags=["assets"])
    limit = settings.max_asset_bytes

    async def visible(request: Request, asset_id: str, action: str) -> AssetRecord:
        """The asset, if this caller may use it: the owner any, a token its service's; 404 otherwise."""
        grant = authenticator.caller(request.headers.raw, action=action)
        record = await asyncio.to_thread(assets.get, asset_id)
        if grant is not None and record.function_id != grant.function_id:
            raise asset_not_found(asset_id)
        return record

    @router.post("/assets", response_model=AssetInfo, status_code=201)
    async def create_asset(request: Request, body: AssetRequest | None = None) -> AssetInfo:
        """Make an asset (CREATED), then PUT its bytes to `upload_url`. Made with a service token, it belongs to
        that service: its token and the owner key may use it."""
        grant: TokenGrant | None = authenticator.caller(request.headers.raw, action="creating an asset")
        wanted = body or AssetRequest()
        record = await asyncio.to_thread(
            assets.create,
            grant.function_id if grant is not None else None,
            content_type=wanted.content_type,
            description=wanted.description,
        )
        return asset_info(record, str(request.base_url))

    @router.get("/assets", response_model=list[AssetInfo])
    async def list_assets(request: Request) -> list[AssetInfo]:
        """The assets this caller may see, oldest first: all of them for the owner key, its service's for a token."""
        grant = authenticator.caller(request.headers.raw, action="listing assets")
        records = await asyncio.to_thread(assets.list, ALL if grant is None else grant.function_id)
        base_url = str(request.base_url)
        return [asset_info(record, base_url) for record in records]

    @router.get("/assets/{asset_id}", response_model=AssetInfo)
    async def get_asset(asset_id: str, request: Request) -> AssetInfo:
        """One asset: its state, and once UPLOADED its size and sha256."""
        record = await visible(request, asset_id, "reading an asset")
        return asset_info(record, str(request.base_url))

    @router.put("/assets/{asset_id}/content", response_model=AssetInfo)
    async def upload_asset(asset_id: str, request: Request) -> AssetInfo:
        """The asset's bytes, as the request body: streamed to disk and hashed, then the asset is UPLOADED. 413 over
        the server's limit (FNSERVE_MAX_ASSET_BYTES); 409 when it has its bytes already (an asset is written once).
        A failed upload leaves the asset CREATED, to be PUT again."""
        await visible(request, asset_id, "uploading an asset")
        upload = await asyncio.to_thread(assets.start_upload, asset_id, max_bytes=limit)
        record = await receive_upload(request, upload, assets.finish_upload, what=f"asset {asset_id}")
        return asset_info(record, str(request.base_url))

    @router.get(
        "/assets/{asset_id}/content",
        response_class=FileResponse,
        responses={200: {"content": {"application/octet-stream": {}}, "description": "the asset's bytes"}},
    )
    async def download_asset(asset_id: str, request: Request) -> FileResponse:
        """The asset's bytes, with its content type (Range requests work). 409 while it has none yet."""
        record = await visible(request, asset_id, "downloading an asset")
        if record.state is not AssetState.uploaded:
            raise AssetConflict(f"asset {asset_id} has no content yet; PUT its bytes to its upload_url first")
        path = assets.path(asset_id)
        try:
            stat = await asyncio.to_thread(os.stat, path)
        except FileNotFoundError:  # deleted since it was read
            raise asset_not_found(asset_id) from None
        # As a header rather than `media_type`, which would add a charset to text/* types the bytes may not have.
        headers = {"content-type": record.content_type, "x-content-type-options": "nosniff"}
        return FileResponse(path, filename=asset_id, stat_result=stat, headers=headers)

    @router.delete("/assets/{asset_id}", status_code=204)
    async def delete_asset(asset_id: str, request: Request) -> Response:
        """Remove the asset and its bytes; invocations naming it afterwards answer 404."""
        await visible(request, asset_id, "deleting an asset")
        await asyncio.to_thread(assets.delete, asset_id)
        return Response(status_code=204)

    return router

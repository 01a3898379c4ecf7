"""Assets: uploaded inputs too large for a request, and results too large to answer inline.

Each asset is a row in the `assets` table and, once it has content, a file `$FNSERVE_HOME/assets/<asset_id>`.
An asset is written once: its bytes arrive (streamed to a temporary file, hashed and counted on the way) or it is
stored whole as a result, and never change after. One created and not uploaded by its deadline expires, as results
do after their retention; a failed write (a full disk) leaves no file behind and raises StorageFull. Who may see
which asset is the HTTP layer's concern (`fnserve.controlplane.assets`); this module is synchronous SQLAlchemy Core,
run in a thread by async callers.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fnserve.disk import discard, storage_error
from fnserve.errors import AssetConflict, AssetNotFound, InvalidRequest, PayloadTooLarge, StorageUnavailable
from fnserve.store.functions import new_id
from fnserve.store.tables import assets
from fnserve.store.uploads import StreamedUpload

ASSET_ID = re.compile(r"ast-[0-9a-f]{16}")  # whole values only: `fullmatch`
MAX_HEADER_ASSETS = 32
_DELETE_BATCH = 500  # ids per DELETE ... IN (...): well under every database's parameter limit


class AssetState(enum.StrEnum):
    created = "CREATED"  # awaiting its bytes
    uploaded = "UPLOADED"


class AssetKind(enum.StrEnum):
    input = "input"  # uploaded by a caller, for invocations to name
    result = "result"  # a result over the inline limit, kept as long as its job


class _Everyone(enum.Enum):
    ALL = "all"


ALL = _Everyone.ALL  # `AssetStore.list(ALL)`: every asset, whoever made it (what the owner sees)


@dataclass(frozen=True)
class AssetRecord:
    asset_id: str
    function_id: str | None  # the function whose token made it (or whose result it is); None: the owner key
    kind: AssetKind
    content_type: str
    description: str
    state: AssetState
    size: int | None
    sha256: str | None
    created_at: float  # epoch seconds, like the jobs table
    uploaded_at: float | None
    expires_at: float | None  # None: kept until deleted


def _asset(row: Any) -> AssetRecord:
    return AssetRecord(
        asset_id=row.asset_id,
        function_id=row.function_id,
        kind=AssetKind(row.kind),
        content_type=row.content_type,
        description=row.description,
        state=AssetState(row.state),
        size=row.size,
        sha256=row.sha256,
        created_at=row.created_at,
        uploaded_at=row.uploaded_at,
        expires_at=row.expires_at,
    )


def asset_not_found(asset_id: str) -> AssetNotFound:
    """The one answer for an asset that is unknown, deleted, expired, or not the caller's to see."""
    return AssetNotFound(f"asset {asset_id[:64]} not found; upload it with POST /v1/assets")


def asset_too_large(asset_id: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"asset {asset_id} is over the {limit} byte limit; send less, or raise FNSERVE_MAX_ASSET_BYTES on the server",
        details={"limit": limit},
    )


def parse_asset_header(value: str) -> list[str]:
    """The asset ids of an `fnserve-input-assets` header: comma-separated, spaces allowed, at most 32.

    A blank value names none. Each entry must look like an asset id (`ast-` and 16 hex digits); InvalidRequest
    names the first that does not. An id named twice counts once.
    """
    if not value.strip():
        return []
    entries = [entry.strip() for entry in value.split(",")]
    if len(entries) > MAX_HEADER_ASSETS:
        raise InvalidRequest(
            f"the fnserve-input-assets header names {len(entries)} assets; the limit is {MAX_HEADER_ASSETS}"
        )
    for entry in entries:
        if not ASSET_ID.fullmatch(entry):
            raise InvalidRequest(
                f"the fnserve-input-assets header has {entry[:64]!r}, which is not an asset id; send ids like "
                "'ast-0123456789abcdef' separated by commas"
            )
    return list(dict.fromkeys(entries))


class AssetUpload(StreamedUpload):
    """One asset's bytes on their way in (`StreamedUpload`); `AssetStore.finish_upload` moves them into place."""

    def __init__(self, asset_id: str, directory: Path, max_bytes: int) -> None:
        super().__init__(
            directory,
            prefix=f".upload-{asset_id}-",
            max_bytes=max_bytes,
            too_large=lambda: asset_too_large(asset_id, max_bytes),
        )
        self.asset_id = asset_id


class AssetStore:
    """Asset rows in the state store's database (the engine of `StateStore`), their files under `home/assets`."""

    def __init__(self, engine: Engine, home: Path, *, upload_deadline_s: float | None = None) -> None:
        self.engine = engine
        self.directory = home / "assets"
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.upload_deadline_s = upload_deadline_s  # None: a created asset waits for its bytes forever

    def path(self, asset_id: str) -> Path:
        """Where an asset's content is (or will be); AssetNotFound for a value that is not an asset id."""
        if not ASSET_ID.fullmatch(asset_id):
            raise asset_not_found(asset_id)
        return self.directory / asset_id

    def create(
        self,
        function_id: str | None,
        *,
        content_type: str,
        description: str,
        kind: str = AssetKind.input,
        expires_at: float | None = None,
    ) -> AssetRecord:
        """A new asset awaiting its bytes (CREATED), owned by `function_id` (None: the owner key). Unless given its
        own `expires_at`, it expires at the upload deadline if its bytes have not come by then."""
        now = time.time()
        if expires_at is None and self.upload_deadline_s is not None:
            expires_at = now + self.upload_deadline_s
        record = AssetRecord(
            asset_id=new_id("ast"),
            function_id=function_id,
            kind=AssetKind(kind),
            content_type=content_type,
            description=description,
            state=AssetState.created,
            size=None,
            sha256=None,
            created_at=now,
            uploaded_at=None,
            expires_at=expires_at,
        )
        with self.engine.begin() as connection:
            connection.execute(assets.insert().values(**_row(record)))
        return record

    def get(self, asset_id: str) -> AssetRecord:
        """The asset; AssetNotFound when it is unknown, deleted or expired."""
        found = self._find([asset_id], time.time()).get(asset_id)
        if found is None:
            raise asset_not_found(asset_id)
        return found

    def start_upload(self, asset_id: str, *, max_bytes: int) -> AssetUpload:
        """Begin writing an asset's bytes; AssetConflict when it has them already (an asset is written once)."""
        record = self.get(asset_id)
        if record.state is AssetState.uploaded:
            raise _already_uploaded(record)
        return AssetUpload(record.asset_id, self.directory, max_bytes)

    def finish_upload(self, upload: AssetUpload) -> AssetRecord:
        """Move the uploaded bytes into place and mark the asset UPLOADED with their size and sha256.

        Of two uploads of one asset at once, the first to finish wins and the other gets AssetConflict; an asset
        deleted meanwhile (or expired at its upload deadline) is AssetNotFound. Either way the losing upload's file is
        removed. An uploaded input asset no longer expires: it is kept until deleted.
        """
        upload.close()
        try:
            with self.engine.begin() as connection:
                # The row changes first, inside the transaction, and the file is moved before it commits: a reader
                # never sees UPLOADED without the file, and two finishing uploads cannot both move theirs.
                changed = connection.execute(
                    assets.update()
                    .where(assets.c.asset_id == upload.asset_id, assets.c.state == AssetState.created.value)
                    .values(
                        state=AssetState.uploaded.value,
                        size=upload.size,
                        sha256=upload.sha256,
                        uploaded_at=time.time(),
                        expires_at=None,
                    )
                ).rowcount
                if changed != 1:
                    raise _already_uploaded(self.get(upload.asset_id))
                upload.move_to(self.path(upload.asset_id))
        finally:
            upload.abort()  # the file was moved (nothing to remove) or lost
        return self.get(upload.asset_id)

    def delete(self, asset_id: str) -> None:
        """Remove the asset's file and row; AssetNotFound when there is no such asset. The file goes first: one that
        cannot be removed (a read-only disk) leaves the asset whole, and the caller gets StorageUnavailable."""
        self.get(asset_id)
        self._unlink(asset_id)
        with self.engine.begin() as connection:
            removed = connection.execute(assets.delete().where(assets.c.asset_id == asset_id)).rowcount
        if removed != 1:
            raise asset_not_found(asset_id)

    def _unlink(self, asset_id: str) -> None:
        try:
            (self.directory / asset_id).unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.directory) or exc from None

    def resolve_inputs(self, ids: Sequence[str], function_id: str) -> dict[str, Path]:
        """The files of the assets an invocation of `function_id` names, in the given order.

        Each must exist and be the owner's (function_id None) or this function's, else AssetNotFound naming it;
        one without content yet is AssetConflict naming it.
        """
        found = self._find(ids, time.time())
        files: dict[str, Path] = {}
        for asset_id in ids:
            record = found.get(asset_id)
            if record is None or record.function_id not in (None, function_id):
                raise asset_not_found(asset_id)
            if record.state is not AssetState.uploaded:
                raise AssetConflict(f"asset {asset_id} has no content yet; PUT its bytes to its upload_url first")
            path = self.path(asset_id)
            if not path.is_file():  # deleted under us
                raise asset_not_found(asset_id)
            files[asset_id] = path
        return files

    def store_result(
        self, function_id: str, data: bytes, *, expires_at: float, content_type: str = "application/json"
    ) -> AssetRecord:
        """Keep a result too large to answer inline as an UPLOADED asset of kind "result", until `expires_at`."""
        asset_id = new_id("ast")
        now = time.time()
        record = AssetRecord(
            asset_id=asset_id,
            function_id=function_id,
            kind=AssetKind.result,
            content_type=content_type,
            description="",
            state=AssetState.uploaded,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=now,
            uploaded_at=now,
            expires_at=expires_at,
        )
        path = self.path(asset_id)
        # The file first, then the row: an asset that can be found always has its content.
        temporary: Path | None = None
        try:
            fd, name = tempfile.mkstemp(dir=self.directory, prefix=f".result-{asset_id}-")  # 0600
            temporary = Path(name)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
            with self.engine.begin() as connection:
                connection.execute(assets.insert().values(**_row(record)))
        except BaseException as exc:
            if temporary is not None:
                discard(temporary)
            discard(path)
            if isinstance(exc, OSError):
                raise storage_error(exc, self.directory) or exc from None
            raise
        return record

    def delete_expired(self, now: float) -> int:
        """Remove the assets whose `expires_at` has passed (results past their retention, inputs never uploaded by
        their deadline), files then rows; returns how many. One whose file cannot be removed stays for the next
        call, which tries again; StorageUnavailable says so once the others are gone."""
        with self.engine.connect() as connection:
            ids = connection.execute(
                sa.select(assets.c.asset_id).where(assets.c.expires_at.is_not(None), assets.c.expires_at <= now)
            ).scalars()
            expired = list(ids)
        removed = 0
        failure: StorageUnavailable | None = None
        for start in range(0, len(expired), _DELETE_BATCH):
            batch = []
            for asset_id in expired[start : start + _DELETE_BATCH]:
                try:
                    self._unlink(asset_id)
                except StorageUnavailable as exc:
                    failure = exc
                else:
                    batch.append(asset_id)
            if batch:
                with self.engine.begin() as connection:
                    removed += connection.execute(assets.delete().where(assets.c.asset_id.in_(batch))).rowcount
        if failure is not None:
            raise failure
        return removed

    def _find(self, ids: Sequence[str], now: float) -> dict[str, AssetRecord]:
        """The unexpired assets among `ids`, by id (values that are not asset ids find nothing)."""
        wanted = [asset_id for asset_id in ids if ASSET_ID.fullmatch(asset_id)]
        if not wanted:
            return {}
        query = sa.select(assets).where(
            assets.c.asset_id.in_(wanted), sa.or_(assets.c.expires_at.is_(None), assets.c.expires_at > now)
        )
        with self.engine.connect() as connection:
            return {row.asset_id: _asset(row) for row in connection.execute(query).all()}

    # Last in the class: below this line, `list` would name the method in annotations.
    def list(self, function_id: str | None | _Everyone) -> list[AssetRecord]:
        """Unexpired assets, oldest first: every one for `ALL` (the owner), else those of `function_id` (None: the
        ones made with the owner key)."""
        query = sa.select(assets).where(sa.or_(assets.c.expires_at.is_(None), assets.c.expires_at > time.time()))
        if function_id is None:
            query = query.where(assets.c.function_id.is_(None))
        elif function_id is not ALL:
            query = query.where(assets.c.function_id == function_id)
        with self.engine.connect() as connection:
            return [_asset(row) for row in connection.execute(query.order_by(assets.c.created_at)).all()]


def _row(record: AssetRecord) -> dict[str, Any]:
    return {
        "asset_id": record.asset_id,
        "function_id": record.function_id,
        "kind": record.kind.value,
        "content_type": record.content_type,
        "description": record.description,
        "state": record.state.value,
        "size": record.size,
        "sha256": record.sha256,
        "created_at": record.created_at,
        "uploaded_at": record.uploaded_at,
        "expires_at": record.expires_at,
    }


def _already_uploaded(record: AssetRecord) -> AssetConflict:
    return AssetConflict(
        f"asset {record.asset_id} already has its content ({record.size} bytes, sha256 {record.sha256}); an asset "
        "is written once: create another with POST /v1/assets"
    )

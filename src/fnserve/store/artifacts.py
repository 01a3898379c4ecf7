"""Uploaded code, content-addressed by sha256 on disk, and unpacked safely for replicas.

Blobs live in `$FNSERVE_HOME/artifacts/<sha256>`; project archives (zip) are unpacked once into
`$FNSERVE_HOME/code/<sha256>/`, within the server's limits (`fnserve.archive`). The same bytes uploaded twice are
stored once. Uploads are streamed to a temporary file and hashed on the way (`store/uploads.py`); the file takes its
digest's name only once its bytes hash to it. Archives are unpacked beside their final place and renamed into it, so a
failure (a refused archive, a full disk) leaves nothing half-written; what a killed server leaves there is removed at
the next start (`fnserve.home`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from fnserve.archive import MAX_FILES, MAX_UNPACKED_BYTES, safe_extract
from fnserve.disk import storage_error
from fnserve.errors import InvalidRequest, NotFound, PayloadTooLarge
from fnserve.store.uploads import StreamedUpload

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_sha256(value: str) -> str:
    if not _SHA256.match(value):
        raise InvalidRequest(f"{value!r:.80} is not a sha256 digest; send 64 lowercase hex characters")
    return value


class ArtifactUpload(StreamedUpload):
    """Code on its way in (`StreamedUpload`), with the digest its bytes must have."""

    def __init__(self, sha256: str, directory: Path, max_bytes: int) -> None:
        super().__init__(
            directory,
            prefix=f".upload-{sha256[:16]}-",
            max_bytes=max_bytes,
            too_large=lambda: PayloadTooLarge(
                f"artifact {sha256[:16]}... is over the {max_bytes} byte limit; make the project smaller (leave data "
                "and virtual environments out), or raise FNSERVE_MAX_ARTIFACT_BYTES on the server",
                details={"limit": max_bytes},
            ),
        )
        self.expected_sha256 = sha256


class ArtifactStore:
    def __init__(self, home: Path, *, max_unpacked_bytes: int = MAX_UNPACKED_BYTES, max_files: int = MAX_FILES) -> None:
        self.blobs = home / "artifacts"
        self.code = home / "code"
        self.max_unpacked_bytes = max_unpacked_bytes
        self.max_files = max_files
        self.blobs.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.code.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.blobs / check_sha256(sha256)

    def head(self, sha256: str, size: int = 16) -> bytes:
        """An artifact's first bytes (what kind of data it is), without reading it all."""
        with self.path(sha256).open("rb") as file:
            return file.read(size)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def start_upload(self, sha256: str, *, max_bytes: int) -> ArtifactUpload:
        """Begin receiving the bytes that should hash to `sha256`, at most `max_bytes` of them."""
        return ArtifactUpload(check_sha256(sha256), self.blobs, max_bytes)

    def finish_upload(self, upload: ArtifactUpload) -> bool:
        """Store the uploaded bytes under their digest, or refuse them (InvalidRequest) when they hash to another.
        Returns False when they were stored already. The temporary file is gone afterwards, either way."""
        try:
            upload.close()
            if upload.sha256 != upload.expected_sha256:
                raise InvalidRequest(
                    f"uploaded bytes hash to {upload.sha256}, not {upload.expected_sha256}; upload them again"
                )
            target = self.path(upload.expected_sha256)
            if target.is_file():
                return False
            upload.move_to(target)
            return True
        finally:
            upload.abort()

    def require(self, sha256: str, *, what: str) -> Path:
        path = self.path(sha256)
        if not path.is_file():
            raise NotFound(f"{what} {sha256} was never uploaded; PUT it to /v1/artifacts/{sha256} first")
        return path

    def unpacked(self, sha256: str) -> Path:
        """The project folder of an uploaded zip archive, unpacked on first use."""
        target = self.code / check_sha256(sha256)
        if target.is_dir():
            return target
        archive = self.require(sha256, what="code archive")
        try:
            staging = Path(tempfile.mkdtemp(dir=self.code, prefix=".unpack-"))  # 0700
        except OSError as exc:
            raise storage_error(exc, self.code) or exc from None
        try:
            safe_extract(archive, staging, max_bytes=self.max_unpacked_bytes, max_files=self.max_files)
            os.replace(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():  # another request unpacked it first: fine; otherwise a real failure
                raise storage_error(exc, self.code) or exc from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

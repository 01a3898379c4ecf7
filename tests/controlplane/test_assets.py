"""Assets (docs/JOBS.md, "Assets"): `/v1/assets` over real HTTP against a real server, who may see which asset, and
the asset store beneath it (inputs for invocations, stored results, expiry) on a real SQLite file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _auth import owner
from secure import secure_a, secure_b

import fnserve as fs
from fnserve.errors import AssetConflict, AssetNotFound, InvalidRequest, PayloadTooLarge
from fnserve.sdk.loader import dumps_by_value
from fnserve.server import is_token_api
from fnserve.settings import Settings
from fnserve.store import AssetStore, StateStore
from fnserve.store.assets import ALL, AssetKind, AssetState, parse_asset_header
from fnserve.testing import run_server, wait_until

HTTP_TIMEOUT = httpx.Timeout(10.0)
MIB = 1024 * 1024
UNKNOWN = "ast-0123456789abcdef"


@dataclass(frozen=True)
class Served:
    """The module's server: its URL and home, an HTTP client without credentials, and the credentials to send."""

    url: str
    home: Path
    http: httpx.Client
    owner: dict[str, str]
    token_a: dict[str, str]
    token_b: dict[str, str]
    function_a: str


def register_with_token(http: httpx.Client, service: fs.Service[Any]) -> tuple[str, dict[str, str]]:
    """Register `service` (not deployed: no replica needed) and make it a token; (function id, its headers)."""
    code = dumps_by_value(service, module_name=service.__module__)
    with fs.Client(str(http.base_url)) as client:
        sha256 = client.upload(code)
    body = {"spec": service.spec.model_dump(mode="json"), "code": {"kind": "pickle", "sha256": sha256}}
    registered = http.post("/v1/functions", json=body)
    assert registered.status_code == 201, registered.text
    token = http.post(f"/v1/functions/{service.spec.name}/tokens", json={"label": "assets test"})
    assert token.status_code == 201, token.text
    return registered.json()["function"]["function_id"], {"authorization": f"Bearer {token.json()['token']}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("assets") / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url, httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as http:
        with httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as as_owner:
            function_a, token_a = register_with_token(as_owner, secure_a)
            _, token_b = register_with_token(as_owner, secure_b)
        yield Served(url, home, http, owner(url), token_a, token_b, function_a)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def error_of(response: httpx.Response, status: int, code: str) -> str:
    """The error envelope's message, after checking the status and the code."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    message: str = error["message"]
    return message


def create(served: Served, headers: dict[str, str], **body: str) -> dict[str, Any]:
    created: dict[str, Any] = ok(served.http.post("/v1/assets", headers=headers, json=body or None), 201)
    return created


def uploaded(served: Served, headers: dict[str, str], data: bytes, **body: str) -> dict[str, Any]:
    asset = create(served, headers, **body)
    result: dict[str, Any] = ok(served.http.put(asset["upload_url"], headers=headers, content=data))
    return result


# -- over HTTP -----------------------------------------------------------------------------------------------------


def test_asset_round_trip_streams_20_mib_to_disk_and_back(served: Served) -> None:
    """
    1. Create an asset: CREATED, with an absolute upload_url on this server.
    2. PUT 20 MiB from a generator that stops after 2 MiB until the server has written part of it to a
       temporary file in the assets folder: the body is streamed to disk, not gathered in memory.
    3. The answer, GET and the listing show it UPLOADED with the right size and sha256.
    4. GET its content (streamed): the same bytes, with the asset's content type.
    """
    data = hashlib.sha256(b"seed").digest() * (20 * MIB // 32)
    asset = create(served, served.owner, content_type="image/png", description="a big picture")
    assert asset["state"] == "CREATED"
    assert asset["upload_url"] == f"{served.url}/v1/assets/{asset['asset_id']}/content"
    assert (asset["kind"], asset["function_id"], asset["size"], asset["sha256"]) == ("input", None, None, None)
    assets_dir = served.home / "assets"

    def written_so_far() -> int:
        return sum(path.stat().st_size for path in assets_dir.glob(f".upload-{asset['asset_id']}-*"))

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), MIB):
            if start == 2 * MIB:
                wait_until(lambda: written_so_far() >= MIB, timeout_s=10, what="the first MiB on disk")
            yield data[start : start + MIB]

    headers = {**served.owner, "content-length": str(len(data))}
    done = ok(served.http.put(asset["upload_url"], headers=headers, content=body()))
    expected = {"state": "UPLOADED", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert {key: done[key] for key in expected} == expected
    assert done["uploaded_at"] is not None
    assert ok(served.http.get(f"/v1/assets/{asset['asset_id']}", headers=served.owner)) == done
    assert done in ok(served.http.get("/v1/assets", headers=served.owner))
    assert list(assets_dir.glob(".upload-*")) == []

    digest = hashlib.sha256()
    with served.http.stream("GET", asset["upload_url"], headers=served.owner) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-length"] == str(len(data))
        for chunk in response.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == expected["sha256"]


def test_create_asset_defaults_without_body_and_refuses_bad_fields(served: Served) -> None:
    plain = create(served, served.owner)
    assert (plain["content_type"], plain["description"]) == ("application/octet-stream", "")
    bad_type = served.http.post("/v1/assets", headers=served.owner, json={"content_type": "text\r\nx-evil: 1"})
    assert "content_type" in error_of(bad_type, 422, "validation_error")
    too_long = served.http.post("/v1/assets", headers=served.owner, json={"description": "d" * 501})
    assert "description" in error_of(too_long, 422, "validation_error")


def test_text_content_is_served_with_its_content_type_unchanged(served: Served) -> None:
    asset = uploaded(served, served.owner, b"\xff\xfe not utf-8", content_type="text/plain")
    response = served.http.get(asset["upload_url"], headers=served.owner)
    assert response.content == b"\xff\xfe not utf-8"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_put_answers_409_when_asset_already_has_content(served: Served) -> None:
    asset = uploaded(served, served.owner, b"first")
    again = served.http.put(asset["upload_url"], headers=served.owner, content=b"second")
    assert asset["asset_id"] in error_of(again, 409, "asset_conflict")
    assert served.http.get(asset["upload_url"], headers=served.owner).content == b"first"


def test_download_answers_409_before_content_is_uploaded(served: Served) -> None:
    asset = create(served, served.owner)
    response = served.http.get(asset["upload_url"], headers=served.owner)
    assert asset["asset_id"] in error_of(response, 409, "asset_conflict")


def test_unknown_and_deleted_assets_answer_404_naming_them(served: Served) -> None:
    """
    1. An id never made, and a value that is not an id at all: 404 asset_not_found naming them.
    2. Upload an asset and delete it: 204, and its file is gone.
    3. Every route on it now answers 404 naming it, deleting it again included.
    """
    for missing in (UNKNOWN, "nothing-like-an-id"):
        message = error_of(served.http.get(f"/v1/assets/{missing}", headers=served.owner), 404, "asset_not_found")
        assert missing in message
    asset = uploaded(served, served.owner, b"short-lived")
    asset_id = asset["asset_id"]
    assert (served.home / "assets" / asset_id).is_file()
    deleted = served.http.delete(f"/v1/assets/{asset_id}", headers=served.owner)
    assert deleted.status_code == 204
    assert not (served.home / "assets" / asset_id).exists()
    for method, path in [
        ("GET", f"/v1/assets/{asset_id}"),
        ("GET", f"/v1/assets/{asset_id}/content"),
        ("PUT", f"/v1/assets/{asset_id}/content"),
        ("DELETE", f"/v1/assets/{asset_id}"),
    ]:
        response = served.http.request(method, path, headers=served.owner, content=b"x" if method == "PUT" else None)
        assert asset_id in error_of(response, 404, "asset_not_found"), (method, path)
    assert asset_id not in [a["asset_id"] for a in ok(served.http.get("/v1/assets", headers=served.owner))]


def test_token_sees_and_uses_only_its_own_services_assets(served: Served) -> None:
    """
    1. The owner makes an asset, token A one, token B one.
    2. Token A's asset belongs to service A; A lists only its own; the owner lists all three.
    3. A can read, download and delete its own; B's and the owner's answer 404, as unknown ones do.
    4. B cannot touch A's asset in any way (404), and A's asset is intact after.
    """
    mine = uploaded(served, served.token_a, b"from a")
    theirs = uploaded(served, served.token_b, b"from b")
    owners = uploaded(served, served.owner, b"from the owner")
    assert mine["function_id"] == served.function_a
    assert theirs["function_id"] not in (None, served.function_a)
    listed_by_a = {a["asset_id"] for a in ok(served.http.get("/v1/assets", headers=served.token_a))}
    assert mine["asset_id"] in listed_by_a
    assert not listed_by_a & {theirs["asset_id"], owners["asset_id"]}
    listed_by_owner = {a["asset_id"] for a in ok(served.http.get("/v1/assets", headers=served.owner))}
    assert {mine["asset_id"], theirs["asset_id"], owners["asset_id"]} <= listed_by_owner

    assert ok(served.http.get(f"/v1/assets/{mine['asset_id']}", headers=served.token_a)) == mine
    assert served.http.get(mine["upload_url"], headers=served.token_a).content == b"from a"
    for other in (theirs, owners):
        unknown = served.http.get(f"/v1/assets/{UNKNOWN}", headers=served.token_a)
        hidden = served.http.get(f"/v1/assets/{other['asset_id']}", headers=served.token_a)
        assert error_of(hidden, 404, "asset_not_found") == error_of(unknown, 404, "asset_not_found").replace(
            UNKNOWN, other["asset_id"]
        )
        assert served.http.get(other["upload_url"], headers=served.token_a).status_code == 404
        assert served.http.delete(f"/v1/assets/{other['asset_id']}", headers=served.token_a).status_code == 404

    attempts = [
        served.http.get(f"/v1/assets/{mine['asset_id']}", headers=served.token_b),
        served.http.get(mine["upload_url"], headers=served.token_b),
        served.http.put(mine["upload_url"], headers=served.token_b, content=b"overwritten"),
        served.http.delete(f"/v1/assets/{mine['asset_id']}", headers=served.token_b),
    ]
    for response in attempts:
        assert mine["asset_id"] in error_of(response, 404, "asset_not_found")
    assert served.http.get(mine["upload_url"], headers=served.owner).content == b"from a"
    assert served.http.delete(f"/v1/assets/{mine['asset_id']}", headers=served.token_a).status_code == 204


def test_token_may_upload_to_an_asset_it_made(served: Served) -> None:
    asset = create(served, served.token_a, content_type="application/json")
    done = ok(served.http.put(asset["upload_url"], headers=served.token_a, content=b"[1, 2]"))
    assert (done["state"], done["size"]) == ("UPLOADED", 6)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/assets"),
        ("GET", "/v1/assets"),
        ("GET", f"/v1/assets/{UNKNOWN}"),
        ("PUT", f"/v1/assets/{UNKNOWN}/content"),
        ("GET", f"/v1/assets/{UNKNOWN}/content"),
        ("DELETE", f"/v1/assets/{UNKNOWN}"),
    ],
)
def test_asset_routes_answer_401_without_a_valid_credential(served: Served, method: str, path: str) -> None:
    assert served.http.request(method, path).status_code == 401
    wrong = {"authorization": "Bearer fst_" + "x" * 43}
    error_of(served.http.request(method, path, headers=wrong), 401, "unauthenticated")


def test_token_is_still_refused_the_rest_of_the_api(served: Served) -> None:
    for path in ("/v1/assetsX", "/v1/functions", "/v1/services"):
        error_of(served.http.get(path, headers=served.token_a), 403, "forbidden")


@pytest.mark.parametrize(
    ("path", "for_tokens"),
    [
        ("/v1/assets", True),
        ("/v1/assets/ast-1/content", True),
        ("/v1/assetsX", False),
        ("/v1/assets-x/1", False),
        ("/v1/status/job-1", True),
        ("/v1/status", False),
        ("/v1/queues/position/job-1", True),
        ("/v1/queues/svc", False),
        ("/v1/functions", False),
    ],
)
def test_is_token_api_matches_whole_path_segments(path: str, for_tokens: bool) -> None:
    assert is_token_api(path) is for_tokens


def test_upload_over_the_limit_answers_413_and_leaves_the_asset_empty(tmp_path: Path) -> None:
    """
    1. A server whose assets hold at most 1000 bytes.
    2. A PUT declaring 2000 bytes is refused at once: 413 naming the limit and FNSERVE_MAX_ASSET_BYTES.
    3. A chunked PUT (no length) that passes the limit mid-stream is refused too, its temporary file removed.
    4. The asset is still CREATED, and takes exactly 1000 bytes.
    """
    settings = Settings(max_asset_bytes=1000)
    with (
        run_server(home=tmp_path / "home", settings=settings, graceful_shutdown_s=2) as url,
        httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as http,
    ):
        asset = ok(http.post("/v1/assets"), 201)
        declared = http.put(asset["upload_url"], content=b"x" * 2000)
        message = error_of(declared, 413, "payload_too_large")
        assert "1000" in message
        assert "FNSERVE_MAX_ASSET_BYTES" in message
        assert asset["asset_id"] in message

        def chunked() -> Iterator[bytes]:
            yield b"y" * 600
            yield b"y" * 600

        streamed = http.put(asset["upload_url"], content=chunked())
        assert "FNSERVE_MAX_ASSET_BYTES" in error_of(streamed, 413, "payload_too_large")
        assert list((tmp_path / "home" / "assets").iterdir()) == []
        assert ok(http.get(f"/v1/assets/{asset['asset_id']}"))["state"] == "CREATED"
        done = ok(http.put(asset["upload_url"], content=b"z" * 1000))
        assert (done["state"], done["size"]) == ("UPLOADED", 1000)


def test_an_asset_not_uploaded_by_its_deadline_expires(tmp_path: Path) -> None:
    """
    1. A server whose assets must get their bytes within 1 s (FNSERVE_ASSET_UPLOAD_DEADLINE_S).
    2. Two assets are created: each says when it expires; one gets its bytes at once, and no longer expires.
    3. Past the deadline the other answers 404, to reads and uploads alike; the uploaded one stays.
    """
    settings = Settings(asset_upload_deadline_s=1.0)
    with (
        run_server(home=tmp_path / "home", settings=settings, graceful_shutdown_s=2) as url,
        httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as http,
    ):
        late = ok(http.post("/v1/assets"), 201)
        prompt = ok(http.post("/v1/assets"), 201)
        assert late["expires_at"] is not None
        assert ok(http.put(prompt["upload_url"], content=b"on time"))["expires_at"] is None
        wait_until(lambda: http.get(f"/v1/assets/{late['asset_id']}").status_code == 404, timeout_s=5)
        error_of(http.put(late["upload_url"], content=b"too late"), 404, "asset_not_found")
        assert [asset["asset_id"] for asset in ok(http.get("/v1/assets"))] == [prompt["asset_id"]]
        assert http.get(f"/v1/assets/{prompt['asset_id']}/content").content == b"on time"


# -- the store -----------------------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AssetStore]:
    state = StateStore(f"sqlite:///{tmp_path / 'fnserve.db'}")
    try:
        yield AssetStore(state.engine, tmp_path)
    finally:
        state.close()


def put(store: AssetStore, function_id: str | None, data: bytes) -> str:
    """An UPLOADED input asset holding `data`, through the same calls the PUT route makes."""
    asset = store.create(function_id, content_type="application/octet-stream", description="")
    upload = store.start_upload(asset.asset_id, max_bytes=len(data))
    upload.write(data)
    store.finish_upload(upload)
    return asset.asset_id


def test_resolve_inputs_gives_files_in_order_for_the_owners_and_the_functions_own(store: AssetStore) -> None:
    mine = put(store, "fn-a", b"a")
    owners = put(store, None, b"owner")
    files = store.resolve_inputs([owners, mine], "fn-a")
    assert list(files) == [owners, mine]
    assert files[mine].read_bytes() == b"a"
    assert files[owners] == store.path(owners)


def test_resolve_inputs_refuses_unknown_foreign_and_empty_assets_naming_each(store: AssetStore) -> None:
    mine = put(store, "fn-a", b"a")
    foreign = put(store, "fn-b", b"b")
    empty = store.create("fn-a", content_type="text/plain", description="").asset_id
    with pytest.raises(AssetNotFound, match=f"asset {foreign} not found; upload it with POST /v1/assets"):
        store.resolve_inputs([mine, foreign], "fn-a")
    with pytest.raises(AssetNotFound, match=UNKNOWN):
        store.resolve_inputs([mine, UNKNOWN], "fn-a")
    with pytest.raises(AssetConflict, match=f"asset {empty} has no content yet; PUT its bytes"):
        store.resolve_inputs([mine, empty], "fn-a")


def test_store_result_keeps_bytes_as_an_uploaded_result(store: AssetStore) -> None:
    data = b'{"big": "result"}'
    record = store.store_result("fn-a", data, expires_at=4_000_000_000.0)
    assert (record.kind, record.state, record.function_id) == (AssetKind.result, AssetState.uploaded, "fn-a")
    assert (record.size, record.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert record.content_type == "application/json"
    assert store.path(record.asset_id).read_bytes() == data
    assert store.get(record.asset_id) == record
    assert store.resolve_inputs([record.asset_id], "fn-a") == {record.asset_id: store.path(record.asset_id)}


def test_delete_expired_removes_rows_and_files_of_expired_assets_only(store: AssetStore) -> None:
    """
    1. Two results, one expiring at t=100 and one at t=300, and an input that never expires.
    2. At t=200 the first is gone, row and file; the others stay.
    3. An asset past its expiry but not yet swept is already not found, and not listed.
    """
    soon = store.store_result("fn-a", b"1", expires_at=100.0)
    later = store.store_result("fn-a", b"2", expires_at=300.0)
    kept = put(store, None, b"3")
    assert store.delete_expired(200.0) == 1
    assert not store.path(soon.asset_id).exists()
    with pytest.raises(AssetNotFound, match=soon.asset_id):
        store.get(soon.asset_id)
    assert store.path(later.asset_id).is_file()
    assert store.get(kept).state is AssetState.uploaded
    assert store.delete_expired(200.0) == 0
    # `later` expired long ago by the clock; unswept, it is already invisible.
    with pytest.raises(AssetNotFound):
        store.get(later.asset_id)
    assert [a.asset_id for a in store.list(ALL)] == [kept]


def test_delete_expired_removes_assets_never_uploaded_by_their_deadline(tmp_path: Path) -> None:
    """Created and left without bytes: deleted once the upload deadline has passed; uploaded in time: kept."""
    state = StateStore(f"sqlite:///{tmp_path / 'fnserve.db'}")
    store = AssetStore(state.engine, tmp_path, upload_deadline_s=60.0)
    try:
        abandoned = store.create(None, content_type="text/plain", description="")
        assert abandoned.expires_at == pytest.approx(abandoned.created_at + 60.0)
        kept = put(store, None, b"bytes")
        assert store.get(kept).expires_at is None
        assert store.delete_expired(abandoned.created_at + 59.0) == 0
        assert store.delete_expired(abandoned.created_at + 61.0) == 1
        with pytest.raises(AssetNotFound):
            store.get(abandoned.asset_id)
        assert [asset.asset_id for asset in store.list(ALL)] == [kept]
    finally:
        state.close()


def test_list_gives_each_caller_its_own(store: AssetStore) -> None:
    owners = put(store, None, b"o")
    mine = put(store, "fn-a", b"a")
    theirs = put(store, "fn-b", b"b")
    assert [a.asset_id for a in store.list(ALL)] == [owners, mine, theirs]
    assert [a.asset_id for a in store.list("fn-a")] == [mine]
    assert [a.asset_id for a in store.list(None)] == [owners]


def test_second_upload_to_finish_gets_409_and_leaves_no_file(store: AssetStore) -> None:
    asset = store.create(None, content_type="text/plain", description="")
    first = store.start_upload(asset.asset_id, max_bytes=100)
    second = store.start_upload(asset.asset_id, max_bytes=100)
    first.write(b"one")
    second.write(b"two")
    assert store.finish_upload(first).size == 3
    with pytest.raises(AssetConflict, match=asset.asset_id):
        store.finish_upload(second)
    assert not second.temp_path.exists()
    assert store.path(asset.asset_id).read_bytes() == b"one"
    with pytest.raises(AssetConflict, match="written once"):
        store.start_upload(asset.asset_id, max_bytes=100)


def test_upload_past_max_bytes_is_refused_and_removed(store: AssetStore) -> None:
    asset = store.create(None, content_type="text/plain", description="")
    upload = store.start_upload(asset.asset_id, max_bytes=4)
    upload.write(b"1234")
    with pytest.raises(PayloadTooLarge, match="4 byte limit"):
        upload.write(b"5")
    assert not upload.temp_path.exists()
    assert store.get(asset.asset_id).state is AssetState.created


def test_delete_removes_row_and_file_and_refuses_unknown(store: AssetStore) -> None:
    asset_id = put(store, None, b"x")
    store.delete(asset_id)
    assert not store.path(asset_id).exists()
    with pytest.raises(AssetNotFound, match=asset_id):
        store.delete(asset_id)


# -- the fnserve-input-assets header -------------------------------------------------------------------------------


def test_parse_asset_header_reads_ids_with_spaces_in_order() -> None:
    first, second = "ast-0000000000000001", "ast-00000000000000ff"
    assert parse_asset_header(f" {first} ,{second},{first}") == [first, second]
    assert parse_asset_header("  ") == []


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("ast-123", "'ast-123'"),
        ("ast-0000000000000001,,ast-0000000000000002", "''"),
        ("ast-0000000000000001, ../../etc/passwd", "'../../etc/passwd'"),
        ("AST-0000000000000001", "'AST-0000000000000001'"),
        (",".join(f"ast-{n:016x}" for n in range(33)), "33 assets; the limit is 32"),
    ],
)
def test_parse_asset_header_refuses_bad_values_naming_them(value: str, named: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_asset_header(value)
    assert named in raised.value.message

"""Security over real HTTP against real servers: the owner key, per-service tokens, owner-only `/v1`, `/-/routes`
and `/info`, public docs served offline, and the `fnserve tokens`, `info` and `deploy` commands."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from _cli import COMMAND_TIMEOUT_S, FNSERVE, REPO, cli_env, fnserve
from echo import echo
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from root_service import rooted
from secure import OPAQUE, secure_a, secure_b

import fnserve as fs
from fnserve.auth import digest, in_process_key, read_owner_key
from fnserve.testing import run_server

HTTP_TIMEOUT = httpx.Timeout(10.0)
DEPLOY_TIMEOUT_S = 30.0

SECURE_APP = REPO / "tests" / "apps" / "secure.py"
# secure_a's second initializer argument: JSON cannot hold a Path, so /info shows its str(), cut to 500 characters.
WHERE = Path("/srv/" + "p" * 600)
UNAUTHENTICATED = 'Bearer realm="fnserve"'
TOKEN = re.compile(r"fst_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Secured:
    """The module's server: its URL and home, its owner key, the deploy tokens of secure_a and secure_b, and an
    HTTP client that sends no credential unless told."""

    url: str
    home: Path
    owner_key: str
    token_a: str
    token_b: str
    http: httpx.Client


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """One server for the module with secure_a (deployed with `"hey", where=WHERE`), secure_b and the public echo,
    all ACTIVE. Tests that change tokens make their own, so they can share it."""
    home = tmp_path_factory.mktemp("secure") / "home"
    with (
        run_server(home=home, graceful_shutdown_s=2) as url,
        httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as http,
    ):
        with contextlib.ExitStack() as stack:
            a = stack.enter_context(fs.deploy(secure_a, url=url)("hey", where=WHERE))
            b = stack.enter_context(fs.deploy(secure_b, url=url)())
            public = stack.enter_context(fs.deploy(echo, url=url)())
            for deployment in (a, b, public):
                deployment.wait(timeout_s=DEPLOY_TIMEOUT_S)
        key = in_process_key(url)
        assert key is not None
        assert a.token is not None
        assert b.token is not None
        yield Secured(url=url, home=home, owner_key=key, token_a=a.token, token_b=b.token, http=http)


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def api_key(secret: str) -> dict[str, str]:
    return {"x-api-key": secret}


def refused(response: httpx.Response, status: int, code: str) -> str:
    """The message of an error answer, once its status, envelope and headers are checked."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    if status == 401:
        assert response.headers["www-authenticate"] == UNAUTHENTICATED
    message: str = error["message"]
    return message


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def run_curl(command: str) -> str:
    """What a printed curl command writes to stdout, run as a shell splits it (replayed with httpx when curl is
    not installed)."""
    args = shlex.split(command)
    assert args[0] == "curl", command
    if shutil.which("curl") is not None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
        return done.stdout
    method, url, headers, data = "GET", "", dict[str, str](), None
    rest = iter(args[1:])
    for arg in rest:
        if arg == "-X":
            method = next(rest)
        elif arg == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(rest)
        elif not arg.startswith("-"):
            url = arg
    return httpx.request(method, url, headers=headers, content=data, timeout=HTTP_TIMEOUT).text


# -- the owner key -----------------------------------------------------------------------------------------------


def test_owner_key_is_saved_with_mode_0600_and_kept_across_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """
    1. A server on a new home saves an `fsk_` key to `owner.key`, mode 0600; it is the key /v1 accepts.
    2. Restarted on the same home: the file is untouched (same inode, same mtime) and the same key is accepted.
    3. With the file loosened to 0644, a restart makes it 0600 again, says so naming the home, and keeps the key.
    """
    home = tmp_path / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url:
        key = read_owner_key(home)
        assert key is not None
        assert re.fullmatch(r"fsk_[A-Za-z0-9_-]{43}", key)
        assert in_process_key(url) == key
        assert (home / "owner.key").stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{url}/v1/services", headers=bearer(key), timeout=HTTP_TIMEOUT).status_code == 200
    before = (home / "owner.key").stat()

    with run_server(home=home, graceful_shutdown_s=2) as url:
        after = (home / "owner.key").stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_mode & 0o777) == (before.st_ino, before.st_mtime_ns, 0o600)
        assert in_process_key(url) == key
        assert httpx.get(f"{url}/v1/services", headers=bearer(key), timeout=HTTP_TIMEOUT).status_code == 200

    (home / "owner.key").chmod(0o644)
    with caplog.at_level("WARNING", logger="fnserve.server"), run_server(home=home, graceful_shutdown_s=2) as url:
        assert in_process_key(url) == key
        assert (home / "owner.key").stat().st_mode & 0o777 == 0o600
    assert f"Made 1 file(s) and folder(s) in {home} private" in caplog.text


# -- who may call what --------------------------------------------------------------------------------------------

OWNER_ONLY = ["/v1/services", "/v1/functions/secure_a/tokens", "/-/routes", "/secure_a/info", "/echo/info"]
# The credential each case sends, and what an owner-only path answers: (status, error code or None).
CREDENTIALS: dict[str, tuple[Callable[[Secured], dict[str, str]], int, str | None]] = {
    "none": (lambda s: {}, 401, "unauthenticated"),
    "wrong_key": (lambda s: bearer("fsk_" + "A" * 43), 401, "unauthenticated"),
    "service_token": (lambda s: bearer(s.token_a), 403, "forbidden"),
    "owner_bearer": (lambda s: bearer(s.owner_key), 200, None),
    "owner_x_api_key": (lambda s: api_key(s.owner_key), 200, None),
}


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("path", OWNER_ONLY)
def test_owner_only_paths_answer_by_credential(secured: Secured, path: str, credential: str) -> None:
    """/v1, /-/routes and each service's /info (behind tokens or public): 401 with the envelope and
    WWW-Authenticate without a valid credential, 403 for a service token, 200 for the owner key either way."""
    headers, status, code = CREDENTIALS[credential]

    response = secured.http.get(path, headers=headers(secured))

    if code is None:
        ok(response, status)
    else:
        refused(response, status, code)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/openapi.json", "application/json"),
        ("/v1/docs", "text/html; charset=utf-8"),
        ("/-/healthz", "application/json"),
        ("/docs", "text/html; charset=utf-8"),
        ("/secure_a/docs", "text/html; charset=utf-8"),
        ("/secure_a/docs/specs.json", "application/json"),
        ("/secure_a/ping", "application/json"),
        ("/-/docs/assets/swagger-ui.css", "text/css; charset=utf-8"),
    ],
)
def test_docs_health_and_ping_are_public(secured: Secured, path: str, content_type: str) -> None:
    response = secured.http.get(path)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type


@pytest.mark.parametrize("send", [bearer, api_key])
def test_service_token_invokes_only_its_own_service(secured: Secured, send: Callable[[str], dict[str, str]]) -> None:
    """
    1. A's token (as a Bearer token, then as x-api-key) calls A's /hello: 200 with A's answer.
    2. The same token on B's /hello: 403 naming both services; on A's /info, on /v1 and on /-/routes: 403.
    3. The owner key calls both services.
    """
    token_a = send(secured.token_a)

    assert ok(secured.http.post("/secure_a/hello", json={"number": 7}, headers=token_a)) == {
        "text": "hey from a",
        "number": 7,
    }

    message = refused(secured.http.post("/secure_b/hello", json={}, headers=token_a), 403, "forbidden")
    assert "'secure_a'" in message
    assert "'secure_b'" in message
    refused(secured.http.get("/secure_a/info", headers=token_a), 403, "forbidden")
    refused(secured.http.get("/v1/services", headers=token_a), 403, "forbidden")
    refused(secured.http.get("/-/routes", headers=token_a), 403, "forbidden")

    owner = send(secured.owner_key)
    assert ok(secured.http.post("/secure_a/hello", json={}, headers=owner))["text"] == "hey from a"
    assert ok(secured.http.post("/secure_b/hello", json={}, headers=owner)) == "hello world from b"


@pytest.mark.parametrize(("method", "path"), [("POST", "/secure_a/hello"), ("GET", "/v1/services")])
@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Bearer fst_" + b"x" * 43)],
        [(b"x-api-key", b"fst_" + b"x" * 43)],
        [(b"authorization", b"Bearer " + b"x" * 8_000)],
        [(b"x-api-key", b"x" * 8_000)],
        [(b"authorization", b"Basic dXNlcjpwYXNzd29yZA==")],
        [(b"authorization", b"Bearer")],
        [(b"authorization", b"Bearer fst_\xe9\xe9")],
    ],
    ids=["none", "unknown_bearer", "unknown_x_api_key", "8kB_bearer", "8kB_x_api_key", "basic", "empty", "latin1"],
)
def test_missing_or_malformed_credentials_are_401(
    secured: Secured, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    response = secured.http.request(method, path, headers=headers, json={})

    refused(response, 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path"), [("POST", "/secure_a/hello"), ("GET", "/v1/services")])
@pytest.mark.parametrize("name", [b"authorization", b"x-api-key"])
def test_credential_over_the_header_line_limit_is_431_before_auth(
    secured: Secured, method: str, path: str, name: bytes
) -> None:
    """A 10 kB credential is not looked at: its header line is over the 8 KiB limit (gateway/limits.py)."""
    response = secured.http.request(method, path, headers=[(name, b"Bearer " + b"x" * 10_000)], json={})

    assert "FNSERVE_MAX_HEADER_LINE_BYTES" in refused(response, 431, "headers_too_large")


def test_public_service_and_ping_need_no_credential(secured: Secured) -> None:
    """
    1. echo (auth=False) answers a call without any credential; its /info still needs the owner key.
    2. secure_a's /ping (GET and POST) answers without a credential, though its endpoints need a token.
    """
    assert ok(secured.http.post("/echo/echo", json={"text": "hi"}))["text"] == "hi"
    refused(secured.http.get("/echo/info"), 401, "unauthenticated")

    assert ok(secured.http.get("/secure_a/ping")) == {"status": "healthy"}
    assert ok(secured.http.post("/secure_a/ping")) == {"status": "healthy"}
    message = refused(secured.http.post("/secure_a/hello", json={}), 401, "unauthenticated")
    assert "fnserve tokens create secure_a" in message


# -- tokens --------------------------------------------------------------------------------------------------------


def test_revoked_token_stops_at_once_while_others_keep_working(secured: Secured) -> None:
    """
    1. Make two tokens for B through the API (201): each answer carries the secret, its id, its hint (the
       secret's first 10 characters), the label, and `active`.
    2. Both call B.
    3. Revoke the first by its hint: the next call with it is 401; the second still works.
    4. Revoking it again is harmless. B's path cannot revoke A's deploy token (404), which keeps working.
    5. The list shows both, the first revoked and the second active, and no secret.
    """
    owner = bearer(secured.owner_key)
    first = ok(secured.http.post("/v1/functions/secure_b/tokens", json={"label": "first"}, headers=owner), 201)
    second = ok(secured.http.post("/v1/functions/secure_b/tokens", json={"label": "second"}, headers=owner), 201)
    for made, label in ((first, "first"), (second, "second")):
        assert TOKEN.fullmatch(made["token"])
        assert (made["hint"], made["label"], made["active"], made["service"]) == (
            made["token"][:10],
            label,
            True,
            "secure_b",
        )
    for made in (first, second):
        assert ok(secured.http.post("/secure_b/hello", json={}, headers=bearer(made["token"]))) == "hello world from b"

    revoked = ok(secured.http.delete(f"/v1/functions/secure_b/tokens/{first['hint']}", headers=owner))

    assert (revoked["token_id"], revoked["active"]) == (first["token_id"], False)
    message = refused(
        secured.http.post("/secure_b/hello", json={}, headers=bearer(first["token"])), 401, "unauthenticated"
    )
    assert "revoked" in message
    assert ok(secured.http.post("/secure_b/hello", json={}, headers=bearer(second["token"]))) == "hello world from b"

    again = ok(secured.http.delete(f"/v1/functions/secure_b/tokens/{first['token_id']}", headers=owner))
    assert (again["active"], again["revoked_at"]) == (False, revoked["revoked_at"])
    tokens_a = ok(secured.http.get("/v1/functions/secure_a/tokens", headers=owner))
    deploy_token_a = next(token for token in tokens_a if token["label"] == "made at deploy")
    refused(
        secured.http.delete(f"/v1/functions/secure_b/tokens/{deploy_token_a['token_id']}", headers=owner),
        404,
        "not_found",
    )
    assert ok(secured.http.post("/secure_a/hello", json={}, headers=bearer(secured.token_a)))["text"] == "hey from a"

    listed = secured.http.get("/v1/functions/secure_b/tokens", headers=owner)
    states = {token["token_id"]: (token["active"], token["revoked_at"] is None) for token in ok(listed)}
    assert states[first["token_id"]] == (False, False)
    assert states[second["token_id"]] == (True, True)
    assert all("token" not in token for token in listed.json())
    assert not TOKEN.search(listed.text)


def test_token_secrets_are_stored_only_as_digests(secured: Secured) -> None:
    """
    1. Make a token through the API.
    2. The SQLite database holds its sha256 in `tokens.digest`; no value in any table holds it, a deploy token
       or the owner key.
    3. No file under the home folder except `owner.key` holds any of those secrets.
    """
    made = ok(secured.http.post("/v1/functions/secure_a/tokens", json={}, headers=bearer(secured.owner_key)), 201)
    secrets = [made["token"], secured.token_a, secured.token_b, secured.owner_key]

    database = sqlite3.connect(f"file:{secured.home / 'fnserve.db'}?mode=ro", uri=True)
    try:
        digests = {row[0] for row in database.execute("SELECT digest FROM tokens")}
        tables = [row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = [
            str(value) for table in tables for row in database.execute(f'SELECT * FROM "{table}"') for value in row
        ]
    finally:
        database.close()
    assert {digest(made["token"]), digest(secured.token_a), digest(secured.token_b)} <= digests
    assert not [value for value in values for secret in secrets if secret in value]

    files = [path for path in secured.home.rglob("*") if path.is_file() and path.name != "owner.key"]
    assert any(path.name.startswith("fnserve.db") for path in files)
    holding = [str(path) for path in files for secret in secrets if secret.encode() in path.read_bytes()]
    assert holding == []


def test_tokens_and_owner_key_survive_a_restart(tmp_path: Path) -> None:
    """
    1. On a server: deploy secure_b (its deploy token T works); make a second token R through the API and revoke it.
    2. Stop it and start another server on the same home folder: the same owner key; once B is ACTIVE again, T
       still calls it and R is still refused (401) and listed as revoked.
    3. Deploy secure_b again: no new token this time (`token` is null), and T calls the new version 2.
    """
    home = tmp_path / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url, fs.deploy(secure_b, url=url)() as deployment:
        key, token = in_process_key(url), deployment.token
        assert key is not None
        assert token is not None
        deployment.wait(timeout_s=DEPLOY_TIMEOUT_S)
        with httpx.Client(base_url=url, headers=bearer(key), timeout=HTTP_TIMEOUT) as owner:
            revoked = ok(owner.post("/v1/functions/secure_b/tokens", json={"label": "revoked"}), 201)
            ok(owner.delete(f"/v1/functions/secure_b/tokens/{revoked['token_id']}"))
        assert ok(httpx.post(f"{url}/secure_b/hello", json={}, headers=bearer(token))) == "hello world from b"

    with run_server(home=home, graceful_shutdown_s=2) as url:
        assert in_process_key(url) == key
        fs.get_deployment("secure_b", wait=DEPLOY_TIMEOUT_S, url=url).close()
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as http:
            assert ok(http.post("/secure_b/hello", json={}, headers=bearer(token))) == "hello world from b"
            refused(http.post("/secure_b/hello", json={}, headers=bearer(revoked["token"])), 401, "unauthenticated")
            listed = ok(http.get("/v1/functions/secure_b/tokens", headers=bearer(key)))
            assert {t["label"]: t["active"] for t in listed} == {"made at deploy": True, "revoked": False}

            with fs.deploy(secure_b, url=url)() as redeployed:
                assert redeployed.token is None
                redeployed.wait(timeout_s=DEPLOY_TIMEOUT_S)
            assert ok(http.get("/v1/services/secure_b", headers=bearer(key)))["version"] == 2
            pinned = bearer(token) | {"fnserve-version": "2"}
            assert ok(http.post("/secure_b/hello", json={}, headers=pinned)) == "hello world from b"


# -- /info and _api ----------------------------------------------------------------------------------------------


def test_info_describes_the_service_to_the_owner(secured: Secured) -> None:
    """
    1. GET secure_a's /info with the owner key: its name, version, an aware ISO start date in the past, an up time
       that agrees with it, and the initializer's arguments as given at deploy (a Path, not JSON, as its str()
       cut to 500 characters).
    2. Its API: each path's method and description; `greeting` is `auto` (the initializer supplies it),
       `number` is not and shows its default; `style`'s default, an object JSON cannot hold, is its str() cut to 500.
    3. POST /info answers the same.
    """
    owner = bearer(secured.owner_key)

    info = ok(secured.http.get("/secure_a/info", headers=owner))

    assert (info["name"], info["version"]) == ("secure_a", 1)
    started = datetime.fromisoformat(info["start_date"])
    assert started.tzinfo is not None
    now = datetime.now(UTC)
    assert started < now
    assert abs((now - started).total_seconds() - info["up_time"]) < 5
    assert info["init_args"] == ["hey"]
    assert info["init_kwargs"] == {"where": str(WHERE)[:500]}
    api = info["api"]
    assert (api["name"], api["description"]) == (
        "secure_a",
        "Service A, behind tokens.\n\nGreets with what its initializer was given.",
    )
    hello = api["paths"]["/hello"]
    assert (hello["method"], hello["streaming"], hello["return_type"], hello["var_kwargs"]) == (
        "POST",
        False,
        "Greeting",
        False,
    )
    assert hello["description"] == "Say the greeting with a number.\n\nThe greeting comes from the initializer."
    assert hello["parameters"]["greeting"] == {"type": "str", "default": "'hey'", "auto": True}  # the value's repr
    assert hello["parameters"]["number"] == {"type": "int", "default": 42, "auto": False}
    assert hello["parameters"]["style"] == {"type": "Opaque", "default": str(OPAQUE)[:500], "auto": False}
    assert len(str(OPAQUE)) > 500
    assert api["paths"]["/api"]["method"] == "GET"

    posted = ok(secured.http.post("/secure_a/info", headers=owner))
    assert {k: v for k, v in posted.items() if k != "up_time"} == {k: v for k, v in info.items() if k != "up_time"}


def test_deployment_info_and_api_parameter_match_info(secured: Secured) -> None:
    """
    1. `Deployment.info()` (from `fs.get_deployment`) gives the same API as GET /info over HTTP.
    2. The `/api` endpoint, whose function takes `_api`, returns that same API (called with A's token).
    """
    described = ok(secured.http.get("/secure_a/info", headers=bearer(secured.owner_key)))["api"]

    with fs.get_deployment("secure_a", url=secured.url) as deployment:
        assert deployment.info()["api"] == described

    assert ok(secured.http.get("/secure_a/api", headers=api_key(secured.token_a))) == described


# -- docs ---------------------------------------------------------------------------------------------------------


def test_service_spec_is_openapi_31_from_hints_and_docstrings(secured: Secured) -> None:
    """
    1. secure_a's /docs/specs.json (no credential) is a valid OpenAPI 3.1 document.
    2. /hello's request body comes from the type hints: `number` an integer defaulting to 42, and `greeting`
       (filled in by the initializer) not required; its 200 response is the `Greeting` model's schema.
    3. The docstring gives the summary and description, without the YAML after `---`, whose tags and extra
       response are merged in.
    4. Both ways of sending a token are security schemes, required by default; /ping needs none.
    """
    document = ok(secured.http.get("/secure_a/docs/specs.json"))
    validate(document, cls=OpenAPIV31SpecValidator)

    hello = document["paths"]["/hello"]["post"]
    body = hello["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["number"] == {"default": 42, "title": "Number", "type": "integer"}
    assert body["properties"]["greeting"]["type"] == "string"
    assert "greeting" not in body.get("required", [])
    returned = hello["responses"]["200"]["content"]["application/json"]["schema"]
    assert (returned["title"], returned["required"]) == ("Greeting", ["text", "number"])
    assert returned["properties"]["number"]["type"] == "integer"
    assert hello["summary"] == "Say the greeting with a number."
    assert hello["description"] == "The greeting comes from the initializer."
    assert hello["tags"] == ["greetings"]
    assert hello["responses"]["418"] == {"description": "A teapot answered"}
    descriptions = [op.get("description", "") for path in document["paths"].values() for op in path.values()]
    assert not [text for text in descriptions if "---" in text or "tags:" in text]

    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    assert document["paths"]["/ping"]["get"]["security"] == []


ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}


@pytest.mark.parametrize(
    ("page", "spec"), [("/secure_a/docs", "/secure_a/docs/specs.json"), ("/v1/docs", "/v1/openapi.json")]
)
def test_swagger_pages_load_only_local_assets(secured: Secured, page: str, spec: str) -> None:
    """
    1. The page (no credential) is HTML naming no http:// or https:// URL; every src and href is under
       /-/docs/assets, and it loads its OpenAPI document from this server.
    2. Each asset answers 200 with its content type; the document is a valid OpenAPI 3.1 document.
    """
    response = secured.http.get(page)

    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "http://" not in response.text
    assert "https://" not in response.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert {Path(asset).name for asset in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    assert f'"url": "{spec}"' in response.text
    for asset in assets:
        assert asset.startswith("/-/docs/assets/"), asset
        loaded = secured.http.get(asset)
        assert loaded.status_code == 200, asset
        assert loaded.headers["content-type"] == ASSET_TYPES[Path(asset).suffix]
        assert loaded.content
    validate(ok(secured.http.get(spec)), cls=OpenAPIV31SpecValidator)


def test_docs_index_links_every_deployed_service(secured: Secured) -> None:
    response = secured.http.get("/docs")

    links = dict(re.findall(r'<a href="([^"]+)">([^<]+)</a>', response.text))
    assert links == {"/echo/docs": "echo", "/secure_a/docs": "secure_a", "/secure_b/docs": "secure_b"}
    assert "Service A, behind tokens." in response.text
    for link in links:
        assert secured.http.get(link).status_code == 200


def test_docs_index_links_a_root_prefix_service_to_its_swagger_ui(server_url: str) -> None:
    """
    1. Deploy `rooted` (route prefix `/`); its OpenAPI document answers at /docs/specs.json.
    2. The /docs index links it to a Swagger UI page that loads that document.
    """
    with fs.deploy(rooted, url=server_url)() as deployment:
        deployment.wait(timeout_s=DEPLOY_TIMEOUT_S)
    with httpx.Client(base_url=server_url, timeout=HTTP_TIMEOUT) as http:
        validate(ok(http.get("/docs/specs.json")), cls=OpenAPIV31SpecValidator)
        links = {name: href for href, name in re.findall(r'<a href="([^"]+)">([^<]+)</a>', http.get("/docs").text)}

        page = http.get(links["rooted"]).text

    assert "SwaggerUIBundle" in page
    assert '"url": "/docs/specs.json"' in page


BAD_YAML_APP = '''
import fnserve as fs


@fs.service(name="bad_yaml")
def bad_yaml() -> dict[str, str]:
    return {{}}


@bad_yaml.endpoint("/hello")
def hello() -> str:
    """Say hello.

    ---
    {yaml}
    """
    return "hello"
'''


def test_invalid_docstring_yaml_fails_at_decoration_naming_the_route() -> None:
    @fs.service(name="bad_yaml")
    def bad_yaml() -> dict[str, str]:
        return {}

    def hello() -> str:
        """Say hello.

        ---
        tags: greetings: x
        """
        return "hello"

    with pytest.raises(fs.errors.SpecError, match=r"docstring of POST /hello is invalid"):
        bad_yaml.endpoint("/hello")(hello)
    assert bad_yaml.endpoints == []


def test_cli_deploy_exits_nonzero_naming_the_route_when_docstring_yaml_is_invalid(
    secured: Secured, tmp_path: Path
) -> None:
    """`fnserve deploy` of a file whose endpoint has invalid docstring YAML fails before uploading: the message
    names the route, no traceback, and the server has no such service."""
    app = tmp_path / "bad_yaml.py"
    app.write_text(BAD_YAML_APP.format(yaml="tags: greetings: x"))

    result = fnserve("deploy", str(app), url=secured.url)

    assert result.returncode != 0
    assert "the OpenAPI YAML after '---' in the docstring of POST /hello is invalid" in result.stderr
    assert "mapping values are not allowed here" in result.stderr
    assert "(invalid_spec)" in result.stderr
    assert "Traceback" not in result.stderr
    refused(secured.http.get("/v1/services/bad_yaml", headers=bearer(secured.owner_key)), 404, "service_not_found")


@pytest.mark.parametrize("yaml", ["tags: [unclosed", "tags: [/unclosed"])
def test_cli_deploy_shows_a_yaml_error_with_brackets_verbatim(secured: Secured, tmp_path: Path, yaml: str) -> None:
    app = tmp_path / "bad_yaml.py"
    app.write_text(BAD_YAML_APP.format(yaml=yaml))

    result = fnserve("deploy", str(app), url=secured.url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert yaml in result.stderr
    assert "expected ',' or ']'" in result.stderr


# -- the command line ---------------------------------------------------------------------------------------------


def test_cli_tokens_create_ls_and_revoke(secured: Secured) -> None:
    """
    1. `fnserve tokens create secure_b --label cli-made` prints a token (and how to revoke it) that calls B.
    2. `fnserve tokens ls secure_b` lists it by id, hint and label as active, without its secret.
    3. `fnserve tokens revoke secure_b ID` says it is revoked: the next call with it is 401, and ls says revoked.
    """
    created = fnserve("tokens", "create", "secure_b", "--label", "cli-made", url=secured.url)

    assert created.returncode == 0, created.stderr
    found = TOKEN.search(created.stdout)
    assert found, created.stdout
    token = found.group(0)
    revoke_hint = re.search(r"fnserve tokens revoke secure_b (\S+?)`", created.stdout)
    assert revoke_hint, created.stdout
    token_id = revoke_hint.group(1)
    assert ok(secured.http.post("/secure_b/hello", json={}, headers=bearer(token))) == "hello world from b"

    listed = fnserve("tokens", "ls", "secure_b", url=secured.url)

    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if token_id in line)
    assert token[:10] + "…" in row
    assert "cli-made" in row
    assert "active" in row
    assert token not in listed.stdout

    revoked = fnserve("tokens", "revoke", "secure_b", token_id, url=secured.url)

    assert revoked.returncode == 0, revoked.stderr
    assert f"Token {token_id} ({token[:10]}…) of secure_b is revoked" in revoked.stdout
    refused(secured.http.post("/secure_b/hello", json={}, headers=bearer(token)), 401, "unauthenticated")
    row = next(
        line for line in fnserve("tokens", "ls", "secure_b", url=secured.url).stdout.splitlines() if token_id in line
    )
    assert "revoked" in row


def test_cli_tokens_revoke_takes_the_whole_token_and_ls_keeps_ids_whole_at_80_columns(secured: Secured) -> None:
    """
    1. Make two tokens for secure_b, one with a long label.
    2. `fnserve tokens ls secure_b` with COLUMNS=80 shows every token id and hint whole, on one line (piped, so the
       long label is not cut either).
    3. `fnserve tokens revoke secure_b fst_...` (the whole token, what a user holds when it leaked) revokes it: the
       next call with it is 401, and the other token still works.
    """
    owner = bearer(secured.owner_key)
    label = "the web frontend of the team that owns the long labels, in production"
    leaked = ok(secured.http.post("/v1/functions/secure_b/tokens", json={"label": label}, headers=owner), 201)
    kept = ok(secured.http.post("/v1/functions/secure_b/tokens", json={"label": "kept"}, headers=owner), 201)

    listed = subprocess.run(
        [str(FNSERVE), "tokens", "ls", "secure_b"],
        capture_output=True,
        text=True,
        env={**cli_env(secured.url), "COLUMNS": "80"},
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )

    assert listed.returncode == 0, listed.stderr
    assert label in listed.stdout
    listed_tokens = ok(secured.http.get("/v1/functions/secure_b/tokens", headers=owner))
    for token in listed_tokens:
        assert any(token["token_id"] in line and token["hint"] + "…" in line for line in listed.stdout.splitlines())

    revoked = fnserve("tokens", "revoke", "secure_b", leaked["token"], url=secured.url)

    assert revoked.returncode == 0, revoked.stderr
    assert f"Token {leaked['token_id']} ({leaked['token'][:10]}…) of secure_b is revoked" in revoked.stdout
    refused(secured.http.post("/secure_b/hello", json={}, headers=bearer(leaked["token"])), 401, "unauthenticated")
    assert ok(secured.http.post("/secure_b/hello", json={}, headers=bearer(kept["token"]))) == "hello world from b"


def test_a_whole_token_revokes_only_on_its_own_service_and_is_never_repeated(secured: Secured) -> None:
    """
    1. A whole token of secure_a, sent to revoke on secure_b (body or path): 404, its message naming the token by
       its hint only; the token still works.
    2. The same token revoked on secure_a, by the path form: revoked.
    """
    owner = bearer(secured.owner_key)
    token = ok(secured.http.post("/v1/functions/secure_a/tokens", json={"label": "a"}, headers=owner), 201)["token"]

    for response in (
        secured.http.post("/v1/functions/secure_b/tokens/revoke", json={"token": token}, headers=owner),
        secured.http.delete(f"/v1/functions/secure_b/tokens/{token}", headers=owner),
    ):
        message = refused(response, 404, "not_found")
        assert f"No token '{token[:10]}…' for this service" in message
        assert token not in response.text
    assert ok(secured.http.post("/secure_a/hello", json={}, headers=bearer(token)))["text"] == "hey from a"
    refused(
        secured.http.post("/v1/functions/secure_a/tokens/revoke", json={"token": "tok-0123"}, headers=owner),
        400,
        "invalid_request",
    )

    revoked = ok(secured.http.delete(f"/v1/functions/secure_a/tokens/{token}", headers=owner))

    assert (revoked["active"], revoked["hint"]) == (False, token[:10])
    refused(secured.http.post("/secure_a/hello", json={}, headers=bearer(token)), 401, "unauthenticated")


def test_cli_info_prints_the_service_description_as_json(secured: Secured) -> None:
    result = fnserve("info", "secure_a", url=secured.url)

    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["name"] == "secure_a"
    assert datetime.fromisoformat(info["start_date"]) < datetime.now(UTC)
    assert info["init_kwargs"] == {"where": str(WHERE)[:500]}
    assert info["api"]["paths"]["/hello"]["parameters"]["greeting"]["auto"] is True


def test_cli_deploy_shows_the_token_once_in_a_curl_that_works(server_url: str) -> None:
    """
    1. `fnserve deploy tests/apps/secure.py:secure_b` on a new server exits 0; its panel has a Token line.
    2. The printed curl for /hello carries that token and, run as printed, gets B's answer.
    3. Deploying again shows no token: the service has one already, and the panel says how to make another.
    """
    result = fnserve("deploy", f"{SECURE_APP}:secure_b", "--timeout", "30", url=server_url)

    assert result.returncode == 0, result.stdout + result.stderr
    line = re.search(rf"Token\s+({TOKEN.pattern})\s+\(shown once", result.stdout)
    assert line, result.stdout
    token = line.group(1)
    curl = next(text.strip() for text in result.stdout.splitlines() if text.strip().startswith("curl "))
    assert f'-H "authorization: Bearer {token}"' in curl
    assert f"{server_url}/secure_b/hello" in curl

    assert run_curl(curl) == '"hello world from b"'

    again = fnserve("deploy", f"{SECURE_APP}:secure_b", "--timeout", "30", url=server_url)

    assert again.returncode == 0, again.stdout + again.stderr
    assert not TOKEN.search(again.stdout)
    assert "fnserve tokens create secure_b" in again.stdout

"""Who may do what: the owner API key, per-service invocation tokens, and the one check each request goes through.

- The owner key is made on the server's first start and kept in `$FNSERVE_HOME/owner.key` (mode 0600), where
  the CLI and the Python client on the same machine find it. It manages everything and invokes everything.
- A token invokes one service's endpoints and nothing else. Only its sha256 is stored; the secret is shown once.

Both are sent as `Authorization: Bearer <secret>` or `x-api-key: <secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fnserve.errors import Forbidden, Unauthenticated
from fnserve.home import create_private

OWNER_KEY_FILE = "owner.key"
OWNER_KEY_PREFIX = "fsk_"
TOKEN_PREFIX = "fst_"
TOKEN_HINT_CHARS = 10  # a token's first characters, kept in clear to tell tokens apart (`fnserve tokens ls`)
# Secrets are 4 + 43 characters; anything far longer is not one of ours, and is refused before hashing.
MAX_CREDENTIAL_LENGTH = 256
_BEARER = b"bearer "

# Servers started in this process (`fnserve.testing.run_server`, a notebook), by URL: a client in the same
# process finds their owner key here, as one on the same machine finds it in the key file.
_IN_PROCESS_KEYS: dict[str, str] = {}


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


TOKEN_HINT_CHARS = 10  # a token's first characters, kept to tell tokens apart (`fst_` and 6 more)


def is_whole_token(value: str) -> bool:
    """Whether `value` is a whole invocation token rather than its id or hint (which also starts with `fst_`)."""
    return value.startswith(TOKEN_PREFIX) and len(value) > TOKEN_HINT_CHARS


def digest(secret: str) -> str:
    """How a secret is stored and looked up: its sha256. Secrets are 256 random bits, so no salt or KDF is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def owner_key_path(home: Path) -> Path:
    return home / OWNER_KEY_FILE


def read_owner_key(home: Path) -> str | None:
    """The owner key saved in `home`, or None when there is none (or it cannot be read)."""
    try:
        key = owner_key_path(home).read_text().strip()
    except OSError:
        return None
    return key or None


def load_or_create_owner_key(home: Path) -> tuple[str, bool]:
    """The server's owner key, made and saved (mode 0600) on first start; `(key, created)`."""
    path = owner_key_path(home)
    existing = read_owner_key(home)
    if existing is not None:  # its mode was made 0600 by `fnserve.home.prepare_home`, if others could read it
        return existing, False
    key = new_secret(OWNER_KEY_PREFIX)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Written whole or not at all (a full disk must not leave an empty key file, which would read as no key and then
    # refuse a new one), and only if no other process made one meanwhile: they must not each print a different key.
    if not create_private(path, (key + "\n").encode()):
        existing = read_owner_key(home)
        if existing is not None:
            return existing, False
        # An empty key file, from a server stopped while writing it before keys were written whole: replaced.
        create_private(path, (key + "\n").encode(), replace=True)
    return key, True


def remember_in_process(url: str, key: str) -> None:
    _IN_PROCESS_KEYS[url.rstrip("/")] = key


def forget_in_process(url: str) -> None:
    _IN_PROCESS_KEYS.pop(url.rstrip("/"), None)


def in_process_key(url: str) -> str | None:
    return _IN_PROCESS_KEYS.get(url.rstrip("/"))


def credential(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The secret a request carries (`Authorization: Bearer …` or `x-api-key: …`), or None.

    Raises Unauthenticated for one that is malformed or too long to be ours.
    """
    found: bytes | None = None
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() != _BEARER:
                raise Unauthenticated("the Authorization header must be 'Bearer <token or API key>'")
            found = value[7:].strip()
            break
        if name == b"x-api-key":
            found = value.strip()
            break
    if not found:
        return None
    if len(found) > MAX_CREDENTIAL_LENGTH or not found.isascii():
        raise Unauthenticated("the token or API key is not valid; check it, or make a new one")
    return found.decode("ascii")


@dataclass(frozen=True)
class TokenGrant:
    """What a valid token allows: invoking one function."""

    token_id: str
    function_id: str
    function_name: str


class Authenticator:
    """Answers "may this request do that?" from the owner key and the tokens in memory.

    The store is the truth for tokens; the control plane calls `grant`/`revoke` as it changes them, so a revoked
    token stops working with the next request.
    """

    def __init__(self, owner_key: str) -> None:
        self._owner_digest = digest(owner_key)
        self._tokens: dict[str, TokenGrant] = {}  # by digest

    def load(self, tokens: Iterable[tuple[str, TokenGrant]]) -> None:
        self._tokens = dict(tokens)

    def grant(self, token_digest: str, grant: TokenGrant) -> None:
        self._tokens[token_digest] = grant

    def revoke(self, token_id: str) -> None:
        for key, grant in list(self._tokens.items()):
            if grant.token_id == token_id:
                del self._tokens[key]

    def _identify(self, secret: str) -> TokenGrant | None:
        """None for the owner key, the grant for a token; Unauthenticated for anything else."""
        found = digest(secret)
        if hmac.compare_digest(found, self._owner_digest):
            return None
        grant = self._tokens.get(found)
        if grant is None:
            raise Unauthenticated("the token or API key is not valid (unknown or revoked); check it, or make a new one")
        return grant

    def require_owner(self, headers: Iterable[tuple[bytes, bytes]], *, action: str = "this") -> None:
        """Pass for the owner key; 401 without a valid credential, 403 for a service token."""
        secret = credential(headers)
        if secret is None:
            raise Unauthenticated(
                f"{action} needs the owner API key: send 'Authorization: Bearer <key>' (the key is in "
                "$FNSERVE_HOME/owner.key on the server's machine)"
            )
        grant = self._identify(secret)
        if grant is not None:
            raise Forbidden(
                f"a service token (for {grant.function_name!r}) can only invoke that service; {action} needs the "
                "owner API key"
            )

    def require_invoke(self, headers: Iterable[tuple[bytes, bytes]], function_id: str, name: str) -> None:
        """Pass for the owner key or a token of this function; 401 without a valid credential, 403 for another's."""
        secret = credential(headers)
        if secret is None:
            raise Unauthenticated(
                f"service {name!r} needs a token: send 'Authorization: Bearer <token>' or 'x-api-key: <token>' "
                f"(make one with `fnserve tokens create {name}`)"
            )
        grant = self._identify(secret)
        if grant is not None and grant.function_id != function_id:
            raise Forbidden(f"this token is for service {grant.function_name!r}, not {name!r}; use a token of {name!r}")

    def caller(self, headers: Iterable[tuple[bytes, bytes]], *, action: str = "this") -> TokenGrant | None:
        """Who calls: None for the owner, the grant for a service token; 401 without a valid credential.

        For the few `/v1` calls a service token may make too (its jobs' results, its assets)."""
        secret = credential(headers)
        if secret is None:
            raise Unauthenticated(
                f"{action} needs the owner API key or a service token: send 'Authorization: Bearer <key or token>'"
            )
        return self._identify(secret)

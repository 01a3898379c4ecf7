"""Per-replica credentials: what a replica's HELLO must carry for the server to take the connection as that replica.

Why, when the replica socket is already private to the server's user: every replica runs as that user too, so any
replica's code could open the socket and say HELLO as another service's replica being started, and then make handle
calls with that service's `uses`. The server makes a random 256-bit secret for each replica it starts, gives it only
to that process (in its environment, `CREDENTIAL_VARIABLE`; the worker removes it from `os.environ` before user code
runs), and refuses a HELLO without it. A replica's rights are then its own service's, and only over its own
connection. This does not wall processes of one OS user off from each other (one may read another's memory);
services that must not trust each other run under different users.
"""

from __future__ import annotations

import hmac
import secrets

CREDENTIAL_VARIABLE = "FNSERVE_REPLICA_CREDENTIAL"


def new_credential() -> str:
    return secrets.token_urlsafe(32)


def credentials_match(given: object, expected: str) -> bool:
    """Compared in constant time; anything but a string is no credential."""
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())

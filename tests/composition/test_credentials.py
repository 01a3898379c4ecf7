"""Per-replica credentials on the real replica socket: a HELLO without the credential the server gave the replica is
refused, and the replica that has it still connects."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from fnserve.composition.credentials import credentials_match, new_credential
from fnserve.gateway.connection import ReplicaListener
from fnserve.runtime.protocol import Kind, encode


def test_credentials_compare_whole_strings_only() -> None:
    secret = new_credential()
    assert len(secret) >= 40
    assert credentials_match(secret, secret)
    assert not credentials_match(secret[:-1], secret)
    assert not credentials_match("", "")  # an empty expectation matches nothing
    assert not credentials_match(None, secret)
    assert not credentials_match(b"bytes", secret)


@pytest.mark.anyio
async def test_hello_without_the_credential_is_refused(tmp_path: Path) -> None:
    """
    1. The listener expects replica r1 with a credential.
    2. A process that says HELLO as r1 with a wrong credential (or none) is disconnected; r1 is still expected.
    3. HELLO with the right credential is taken as r1.
    """
    listener = ReplicaListener(str(tmp_path / "replicas.sock"))
    await listener.start()
    try:
        secret = new_credential()
        hello = listener.expect("r1", secret)
        for wrong in ([Kind.HELLO, "r1", os.getpid(), "guessed"], [Kind.HELLO, "r1", os.getpid()]):
            reader, writer = await asyncio.open_unix_connection(listener.path)
            writer.write(encode(*wrong))
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # closed by the server
            writer.close()
            assert not hello.done()
        reader, writer = await asyncio.open_unix_connection(listener.path)
        writer.write(encode(Kind.HELLO, "r1", os.getpid(), secret))
        async with asyncio.timeout(5):
            connection, pid = await hello
        assert pid == os.getpid()
        connection.close()
        writer.close()
    finally:
        await listener.close()

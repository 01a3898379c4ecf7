"""Where clients find the server: `server_url` takes what people type and refuses what names no server."""

from __future__ import annotations

import pytest

from fnserve.settings import ClientSettings, server_url


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1:18200", "http://127.0.0.1:18200"),
        ("localhost:8000/", "http://localhost:8000"),
        ("https://fnserve.example.org", "https://fnserve.example.org"),
        (" http://[::1]:8000 ", "http://[::1]:8000"),
    ],
)
def test_server_url_adds_http_to_a_bare_host_and_port(given: str, url: str) -> None:
    assert server_url(given, source="--url") == url


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("ftp://host:21", "is not an http:// or https:// URL"),
        ("host:99999", "has no valid port"),
        ("http://", "names no host"),
        ("127.0.0.1:0", "has port 0"),
    ],
)
def test_server_url_refuses_what_names_no_server_with_the_fix(given: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        server_url(given, source="--url")
    assert "http://HOST:PORT" in str(raised.value)


def test_client_settings_read_a_bare_fnserve_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FNSERVE_URL", "127.0.0.1:18200")

    assert ClientSettings.from_env().url == "http://127.0.0.1:18200"

"""The pages behind `/docs`: an offline Swagger UI for each service, its assets, and an index of services.

Pure functions returning bytes, and the URLs the server serves them at. The Swagger UI assets come from the
`swagger-ui-py` package and are served by fnserve itself, never from a CDN. The OpenAPI document the UI shows
is made in `openapi.py`.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

INDEX_URL = "/docs"
"""The index of every service's docs."""
ASSETS_URL = "/-/docs/assets"
"""Swagger UI's files: `{ASSETS_URL}/{name}`, names from `swagger_asset`'s allow-list."""
SERVICE_DOCS_PATH = "/docs"
"""A service's Swagger UI, under its route prefix."""
SERVICE_SPEC_PATH = "/docs/specs.json"
"""A service's OpenAPI document, under its route prefix."""

# The only files we serve, with their content types.
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}


# A service at the route prefix `/` would have its UI at `/docs`, where the index is: it gets this address instead.
ROOT_SERVICE_DOCS_URL = "/-/docs/root"


def service_docs_url(route_prefix: str) -> str:
    """Where a service's Swagger UI is: `/greeter` → `/greeter/docs` (`/` → `ROOT_SERVICE_DOCS_URL`)."""
    return ROOT_SERVICE_DOCS_URL if route_prefix == "/" else route_prefix + SERVICE_DOCS_PATH


def service_spec_url(route_prefix: str) -> str:
    """Where a service's OpenAPI document is: `/greeter` → `/greeter/docs/specs.json`."""
    return route_prefix.rstrip("/") + SERVICE_SPEC_PATH


def swagger_ui_html(*, title: str, spec_url: str, assets_url: str = ASSETS_URL) -> bytes:
    """A Swagger UI page for the OpenAPI document at `spec_url`, loading its scripts from `assets_url`.

    Example:
        >>> page = swagger_ui_html(title="greeter", spec_url="/greeter/docs/specs.json", assets_url=ASSETS_URL)
        >>> b'src="/-/docs/assets/swagger-ui-bundle.js"' in page
        True
    """
    assets = html.escape(assets_url.rstrip("/"), quote=True)
    config = {
        "url": spec_url,
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "persistAuthorization": True,
        "validatorUrl": None,  # Swagger UI's default posts the document to validator.swagger.io
    }
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - API docs</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({_script_json(config)});
</script>
</body>
</html>
"""
    return page.encode()


def swagger_asset(name: str) -> tuple[bytes, str] | None:
    """`(content, content type)` of one Swagger UI file, or None for a name not on the allow-list (or missing).

    Example:
        >>> swagger_asset("swagger-ui.css")[1]
        'text/css; charset=utf-8'
        >>> swagger_asset("../pyproject.toml") is None
        True
    """
    content_type = _ASSETS.get(name)
    if content_type is None:
        return None
    content = _read_asset(name)
    return None if content is None else (content, content_type)


def docs_index_html(services: Sequence[tuple[str, str, str]]) -> bytes:
    """The `/docs` page: one link per `(name, docs_url, description)`, or how to deploy the first service."""
    if services:
        items = "\n".join(
            f'<li><a href="{html.escape(url, quote=True)}">{html.escape(name)}</a>'
            + (f" &mdash; {html.escape(_first_line(description))}" if _first_line(description) else "")
            + "</li>"
            for name, url, description in services
        )
        body = f"<ul>\n{items}\n</ul>"
    else:
        body = "<p>No services deployed; <code>fnserve deploy app.py:service</code></p>"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fnserve - API docs</title>
<link rel="icon" type="image/png" href="{html.escape(ASSETS_URL, quote=True)}/favicon-32x32.png">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
li {{ margin: 0.25rem 0; }}
</style>
</head>
<body>
<h1>API docs</h1>
{body}
</body>
</html>
"""
    return page.encode()


def _script_json(value: object) -> str:
    # JSON is a JS literal; inside <script>, `</script>` or `<!--` in a string would still end or confuse the
    # element, so `<`, `>` and `&` go out as \\u escapes (U+2028/9 already do, with ensure_ascii).
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


@functools.cache
def _static_dir() -> Path | None:
    # Found without importing swagger_ui, which pulls in jinja2 and urllib for its own web-framework helpers.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "static"


@functools.cache
def _read_asset(name: str) -> bytes | None:
    # Called with allow-listed names only, so the cache holds at most len(_ASSETS) files.
    static = _static_dir()
    if static is None:
        return None
    try:
        return (static / name).read_bytes()
    except FileNotFoundError:
        return None

"""Talking to a server: `Client`/`AsyncClient` (the `/v1` API and invocations), `Deployment`, `Job`, the CLI.

Import them from `fnserve` (`fs.Client`); this package's modules load on first use there, so that the CLI's
`fnserve server` and every replica run without httpx.
"""

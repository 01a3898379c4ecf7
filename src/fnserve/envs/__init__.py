"""Per-service Python environments: requirement sets (`requirements`), the runtime every replica needs (`runtime`),
uv builds with locks, shared and cached by content (`builder`), and listing and removing what was built (`cache`).

A service that names `requirements=[...]` (or a named environment, or a requirements.txt in its project) runs its
replicas on the interpreter of a venv of its own, built by uv on the server, holding those packages and nothing of the
server's: docs/ENVIRONMENTS.md.
"""

"""Services working together (docs/COMPOSITION.md), one module per concept; a replica imports only what it uses.

- Handles: `handles.py` is the public face (`fs.handle`), `channel.py` its replica side (calls over the replica's own
  connection), `credentials.py` who a replica is, `graph.py` the dependency order and Ray Serve's `.bind()`. The
  server's side of a handle call is `gateway/handle_calls.py`.
- Dynamic batching: `batch.py` (`@fs.batch`), `batch_window.py`, `batching.py` (the replica's batcher).
- Model multiplexing: `model_cache.py` (`@fs.multiplexed`, the replica's cache), `multiplex.py` (the gateway's choice).
"""

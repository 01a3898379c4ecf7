"""Composition: services calling services (handles), and deploying them as a graph.

`handles.py` is the public face (`fs.handle`), `channel.py` its replica side (calls over the replica's own
connection), `graph.py` the dependency order and Ray Serve's `.bind()`. The server's side of a handle call is
`gateway/handle_calls.py`.
"""

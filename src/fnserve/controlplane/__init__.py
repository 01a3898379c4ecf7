"""The control plane: the `/v1` REST API and the supervisor that keeps replicas matching the store."""

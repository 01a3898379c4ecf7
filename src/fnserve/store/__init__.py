"""The state store: what the server knows that must survive a restart, and the code it was given."""

from fnserve.store.artifacts import ArtifactStore
from fnserve.store.services import ServiceRecord, ServiceState, StateStore

__all__ = ["ArtifactStore", "ServiceRecord", "ServiceState", "StateStore"]

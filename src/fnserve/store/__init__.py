"""The state store: what the server knows that must survive a restart, and the code it was given."""

from fnserve.store.artifacts import ArtifactStore
from fnserve.store.assets import AssetRecord, AssetStore
from fnserve.store.functions import (
    DeploymentRecord,
    DeploymentState,
    FunctionRecord,
    StateStore,
    VersionRecord,
)
from fnserve.store.tokens import TokenRecord, TokenStore

__all__ = [
    "ArtifactStore",
    "AssetRecord",
    "AssetStore",
    "DeploymentRecord",
    "DeploymentState",
    "FunctionRecord",
    "StateStore",
    "TokenRecord",
    "TokenStore",
    "VersionRecord",
]

"""Routing without I/O for multiplexed models: which ready replica takes a call that names a model.

A call with a model id (the `fnserve-model-id` header, or Ray Serve's `serve_multiplexed_model_id`) goes to a replica
that holds that model, or is loading it, when one has a free slot; otherwise to the least loaded replica, which loads
it (among equally loaded ones, the one holding fewest models, so nothing is evicted while another replica has room).
What a replica holds is what it last reported (a MODELS frame, sent whenever its set changes: runtime/protocol.py)
plus the model ids of the calls in flight to it, so calls for a model that is still loading follow the first one
instead of loading it twice. The gateway's async driver is `Gateway._replica_for_model`; this module only decides.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, TypeVar

# The caller names the model in a header; Ray Serve's name for it is taken as well.
MODEL_ID_HEADER = b"fnserve-model-id"
RAY_MODEL_ID_HEADER = b"serve_multiplexed_model_id"
MODEL_ID_HEADERS = frozenset((MODEL_ID_HEADER, RAY_MODEL_ID_HEADER))
# The key of a call's context (runtime/protocol.py: CALL) that carries the model id to the replica.
MODEL_ID_KEY = "model_id"
MAX_MODEL_ID_CHARS = 256


class HoldsModels(Protocol):
    """What the chooser reads of a replica's connection (gateway/connection.py)."""

    @property
    def in_flight(self) -> int: ...

    @property
    def is_open(self) -> bool: ...

    @property
    def models(self) -> Collection[str]:
        """The model ids the replica reported it holds (loaded or loading)."""
        ...

    @property
    def model_calls(self) -> Mapping[str, int]:
        """Calls in flight to it, by model id (an id appears only while such a call is)."""
        ...


R = TypeVar("R", bound=HoldsModels)


def choose_replica(replicas: Sequence[R], model_id: str, slot_limit: int) -> R | None:
    """The replica for a call of `model_id`, among those with a free slot (fewer than `slot_limit` calls in flight);
    None when none has one (the caller waits for a slot, or for a replica to start).

    Order of preference: a replica that holds the model (or has a call for it in flight), least loaded first; then
    one that does not, least loaded first and, among equally loaded ones, the one holding fewest models. Ties go to
    the first in `replicas`.
    """
    best: R | None = None
    best_key: tuple[bool, int, int] | None = None
    for replica in replicas:
        in_flight = replica.in_flight
        if in_flight >= slot_limit or not replica.is_open:
            continue
        models = replica.models
        holds = model_id in models or model_id in replica.model_calls
        key = (not holds, in_flight, len(models))
        if best_key is None or key < best_key:
            best, best_key = replica, key
            if key[0] is False and in_flight == 0:
                break  # holds it and is idle: nothing beats it
    return best


def model_id_from_header(value: bytes) -> str | None:
    """The model id a header names; None for an empty one (as Ray Serve treats it: no model). ValueError names what
    is wrong with one that cannot be an id."""
    text = value.decode("latin-1").strip()
    if not text:
        return None
    if len(text) > MAX_MODEL_ID_CHARS:
        raise ValueError(f"a model id is at most {MAX_MODEL_ID_CHARS} characters, got {len(text)}")
    return text

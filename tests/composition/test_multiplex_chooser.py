"""Which replica takes a call for a multiplexed model: decided without I/O (composition/multiplex.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fnserve.composition.multiplex import choose_replica, model_id_from_header


@dataclass
class Fake:
    name: str
    in_flight: int = 0
    models: tuple[str, ...] = ()
    model_calls: dict[str, int] = field(default_factory=dict)
    is_open: bool = True


def chosen(replicas: list[Fake], model_id: str, slot_limit: int = 4) -> str | None:
    replica = choose_replica(replicas, model_id, slot_limit)
    return None if replica is None else replica.name


def test_a_replica_that_holds_the_model_is_chosen_even_when_busier() -> None:
    replicas = [Fake("a", in_flight=0), Fake("b", in_flight=3, models=("m1",))]
    assert chosen(replicas, "m1") == "b"


def test_among_replicas_that_hold_it_the_least_loaded_is_chosen() -> None:
    replicas = [Fake("a", in_flight=2, models=("m1",)), Fake("b", in_flight=1, models=("m1", "m2"))]
    assert chosen(replicas, "m1") == "b"


def test_a_model_still_loading_is_followed_to_its_replica() -> None:
    """No report yet, but a call for it is in flight there: that replica is loading it."""
    replicas = [Fake("a"), Fake("b", in_flight=1, model_calls={"m1": 1})]
    assert chosen(replicas, "m1") == "b"


def test_a_new_model_goes_to_the_least_loaded_replica() -> None:
    replicas = [Fake("a", in_flight=2, models=("m1",)), Fake("b", in_flight=1, models=("m2", "m3"))]
    assert chosen(replicas, "m9") == "b"


def test_among_equally_loaded_replicas_a_new_model_goes_to_the_one_holding_fewest() -> None:
    replicas = [Fake("a", models=("m1", "m2")), Fake("b", models=("m3",)), Fake("c", models=("m4", "m5"))]
    assert chosen(replicas, "m9") == "b"


def test_a_holder_without_a_free_slot_gives_way_to_another_replica() -> None:
    replicas = [Fake("a", in_flight=4, models=("m1",)), Fake("b", in_flight=1)]
    assert chosen(replicas, "m1", slot_limit=4) == "b"


def test_no_replica_with_a_free_slot_or_open_chooses_none() -> None:
    assert chosen([Fake("a", in_flight=1), Fake("b", in_flight=1)], "m1", slot_limit=1) is None
    assert chosen([Fake("a", models=("m1",), is_open=False)], "m1") is None
    assert chosen([], "m1") is None


def test_ties_go_to_the_first_replica() -> None:
    assert chosen([Fake("a"), Fake("b")], "m1") == "a"


@pytest.mark.parametrize(("value", "expected"), [(b"m1", "m1"), (b"  ft/customer-42 ", "ft/customer-42"), (b"", None)])
def test_model_id_from_header(value: bytes, expected: str | None) -> None:
    assert model_id_from_header(value) == expected


def test_a_model_id_over_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 256 characters, got 300"):
        model_id_from_header(b"x" * 300)

"""``drivers.docker.addresses.AddressRotation``: a new container never gets an address that was just in use.

Why it matters is in the module's docstring (a replacement at its predecessor's address is unreachable from the
host until the next ARP retransmission, and Traefik holds that URL DOWN); the integration side is in
tests/integration/test_docker_driver_api.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import given
from hypothesis import strategies as st

from reconciler.drivers.docker.addresses import QUARANTINE, AddressRotation

NET = "erp-acme"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rotation(subnet: str = "10.213.0.0/29", clock: Clock | None = None) -> AddressRotation:
    made = AddressRotation(clock=clock or Clock())
    made.observed([(NET, subnet)], [])
    return made


def test_an_unknown_network_or_subnet_leaves_the_choice_to_the_engine() -> None:
    made = AddressRotation()
    assert made.pick(NET, []) is None
    made.observed([(NET, None), ("erp-v6", "fd00::/64"), ("erp-bad", "not a subnet")], [])
    assert made.pick(NET, []) is None and made.pick("erp-v6", []) is None and made.pick("erp-bad", []) is None


def test_addresses_go_round_skipping_network_gateway_and_broadcast() -> None:
    made = rotation(clock=Clock())
    # A /29: .0 network, .1 gateway, .7 broadcast; .2-.6 for containers.
    assert [made.pick(NET, []) for _ in range(5)] == [f"10.213.0.{i}" for i in range(2, 7)]


def test_the_address_a_removed_container_held_is_not_handed_out_again_at_once() -> None:
    clock = Clock()
    made = rotation("10.213.0.0/26", clock)
    made.observed([], [(NET, "10.213.0.2"), (NET, "10.213.0.3")])
    # The snapshot after `docker rm -f` of .2: the network's live endpoints are only .3.
    replacement = made.pick(NET, ["10.213.0.3/26"])
    assert replacement not in {"10.213.0.2", "10.213.0.3"}
    again = made.pick(NET, ["10.213.0.3/26", f"{replacement}/26"])
    assert again not in {"10.213.0.2", "10.213.0.3", replacement}


def test_a_quarantined_address_is_used_when_nothing_else_is_free_and_after_the_quarantine() -> None:
    clock = Clock()
    made = rotation(clock=clock)
    handed = [made.pick(NET, []) for _ in range(5)]
    # Every address was just handed out; four are still in use, one (.4) was freed a moment ago.
    live = [a for a in handed if a != "10.213.0.4"]
    assert made.pick(NET, live) == "10.213.0.4"
    assert made.pick(NET, handed) is None  # full
    clock.now += QUARANTINE + 1
    assert made.pick(NET, ["10.213.0.2"]) == "10.213.0.5"  # rested again: the rotation goes on from .4


def test_concurrent_picks_on_one_network_never_collide() -> None:
    made = rotation("10.213.0.0/26")
    with ThreadPoolExecutor(max_workers=8) as pool:
        picked = list(pool.map(lambda _: made.pick(NET, []), range(40)))
    assert None not in picked and len(set(picked)) == 40


@given(
    in_use=st.sets(st.integers(min_value=0, max_value=63), max_size=64),
    recent=st.sets(st.integers(min_value=0, max_value=63), max_size=64),
)
def test_a_pick_is_inside_the_subnet_never_in_use_and_rested_when_any_is(in_use: set[int], recent: set[int]) -> None:
    clock = Clock()
    made = rotation("10.213.0.0/26", clock)
    made.observed([], [(NET, f"10.213.0.{i}") for i in recent])
    live = [f"10.213.0.{i}/26" for i in in_use]
    picked = made.pick(NET, live)
    usable = set(range(2, 63))
    free = usable - in_use
    if not free:
        assert picked is None
        return
    assert picked is not None
    last = int(picked.rsplit(".", 1)[1])
    assert last in free
    if free - recent:
        assert last not in recent

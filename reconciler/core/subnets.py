"""Tenant network subnet allocation from a configured pool (pure).

Stock Docker engines run out of default address pools at about 30 networks, so every tenant network gets an
explicit subnet. The choice is derived from what the engine reports (every subnet in use, ours or not), so it
is stable across restarts without extra state: an existing network keeps its subnet, and a new one starts at a
slot derived from the tenant name (so the same tenant tends to get the same subnet back) and probes forward.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import zlib
from collections.abc import Iterable


class SubnetPoolExhausted(RuntimeError):
    pass


def _interval(subnet: str) -> tuple[int, int] | None:
    """First and last address of an IPv4 subnet (host bits allowed); None for IPv6 or what is not a subnet."""
    try:
        parsed = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return None
    if not isinstance(parsed, ipaddress.IPv4Network):
        return None
    return int(parsed.network_address), int(parsed.broadcast_address)


class UsedSubnets:
    """The IPv4 subnets in use, parsed once (on the first allocation) for every allocation of a pass: a plan that
    creates k networks among n in use costs O(n log n + k n), not O(k n) parses."""

    def __init__(self, used: Iterable[str] = ()) -> None:
        self._texts = list(used)
        self._starts: list[int] | None = None
        self._ends: list[int] = []
        self._reach: list[int] = []  # the highest end among the intervals up to each index

    def _parse(self) -> list[int]:
        if self._starts is None:
            self._index(sorted(i for i in map(_interval, self._texts) if i is not None))
        assert self._starts is not None
        return self._starts

    def _index(self, intervals: list[tuple[int, int]]) -> None:
        self._starts = [first for first, _ in intervals]
        self._ends = [last for _, last in intervals]
        self._reach = list(itertools.accumulate(self._ends, max))

    def add(self, subnet: str) -> None:
        if self._starts is None:
            self._texts.append(subnet)
            return
        interval = _interval(subnet)
        if interval is not None:
            intervals = [*zip(self._starts, self._ends, strict=True)]
            bisect.insort(intervals, interval)
            self._index(intervals)

    def overlaps(self, first: int, last: int) -> bool:
        """Whether any subnet in use shares an address with ``first``..``last``."""
        starts = self._parse()
        below = bisect.bisect_right(starts, last)  # the intervals that start at or before ``last``
        return below > 0 and self._reach[below - 1] >= first


def allocate_subnet(key: str, pool: str, prefixlen: int, used: Iterable[str] | UsedSubnets) -> str:
    """A free /prefixlen in ``pool`` not overlapping ``used``; ``key`` (the network name) picks where to start."""
    network = ipaddress.ip_network(pool)
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(f"subnet pool {pool!r} must be IPv4")
    if prefixlen < network.prefixlen or prefixlen > 29:
        raise ValueError(f"subnet prefix /{prefixlen} must be between /{network.prefixlen} and /29 for pool {pool}")
    in_use = used if isinstance(used, UsedSubnets) else UsedSubnets(used)
    count = 2 ** (prefixlen - network.prefixlen)
    start = zlib.crc32(key.encode()) % count
    size = 2 ** (32 - prefixlen)
    base = int(network.network_address)
    for step in range(count):
        first = base + ((start + step) % count) * size
        if not in_use.overlaps(first, first + size - 1):
            return str(ipaddress.IPv4Network((first, prefixlen)))
    raise SubnetPoolExhausted(f"no free /{prefixlen} left in subnet pool {pool} for {key!r}")

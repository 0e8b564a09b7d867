"""Tenant network subnet allocation from a configured pool (pure).

Stock Docker engines run out of default address pools at about 30 networks, so every tenant network gets an
explicit subnet. The choice is derived from what the engine reports (every subnet in use, ours or not), so it
is stable across restarts without extra state: an existing network keeps its subnet, and a new one starts at a
slot derived from the tenant name (so the same tenant tends to get the same subnet back) and probes forward.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterable


class SubnetPoolExhausted(RuntimeError):
    pass


def _overlaps(candidate: ipaddress.IPv4Network, used: list[ipaddress.IPv4Network]) -> bool:
    return any(candidate.overlaps(other) for other in used)


def allocate_subnet(key: str, pool: str, prefixlen: int, used: Iterable[str]) -> str:
    """A free /prefixlen in ``pool`` not overlapping ``used``; ``key`` (the network name) picks where to start."""
    network = ipaddress.ip_network(pool)
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(f"subnet pool {pool!r} must be IPv4")
    if prefixlen < network.prefixlen or prefixlen > 29:
        raise ValueError(f"subnet prefix /{prefixlen} must be between /{network.prefixlen} and /29 for pool {pool}")
    used_networks = []
    for item in used:
        try:
            parsed = ipaddress.ip_network(item, strict=False)
        except ValueError:
            continue
        if isinstance(parsed, ipaddress.IPv4Network):
            used_networks.append(parsed)
    count = 2 ** (prefixlen - network.prefixlen)
    start = zlib.crc32(key.encode()) % count
    size = 2 ** (32 - prefixlen)
    base = int(network.network_address)
    for step in range(count):
        index = (start + step) % count
        candidate = ipaddress.IPv4Network((base + index * size, prefixlen))
        if not _overlaps(candidate, used_networks):
            return str(candidate)
    raise SubnetPoolExhausted(f"no free /{prefixlen} left in subnet pool {pool} for {key!r}")

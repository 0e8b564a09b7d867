"""Client address ranges of a route: CIDR validation and allow-minus-deny arithmetic (pure).

Used by the route input model (``desired_state.inputs``), by ``build_tenant`` (a route must admit someone, and
compile to a bounded list) and by ``renderers.traefik`` (Traefik has only an allow list, so a deny list is
served as the complement). The complement is computed as integer intervals in one sorted sweep, so a long deny
list costs O(n log n) plus the size of the result, and the result can be counted without building it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from desired_state.bounds import MAX_CIDRS

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_EVERYONE = ("0.0.0.0/0", "::/0")
_Interval = tuple[int, int]  # first and last address, inclusive


def check_cidr(value: object) -> str:
    """One IPv4 or IPv6 network in CIDR form (a bare address means just that address), normalised."""
    if not isinstance(value, str) or len(value) > 50:
        raise ValueError("an entry is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32")
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32") from exc
        raise ValueError(f"{value!r} has host bits set; did you mean {loose}?") from exc
    return str(network)


def check_cidrs(value: Any) -> Any:
    """An allow or deny list: at most ``MAX_CIDRS`` CIDRs, normalised."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of CIDRs such as [203.0.113.0/24, 2001:db8::/32]")
    if len(value) > MAX_CIDRS:
        raise ValueError(f"has {len(value)} entries; at most {MAX_CIDRS} (use wider ranges)")
    return tuple(check_cidr(item) for item in value)


def _intervals(cidrs: tuple[str, ...], version: int) -> list[_Interval]:
    """The networks of one IP version as merged, sorted address intervals."""
    spans = sorted(
        (int(net.network_address), int(net.broadcast_address))
        for net in (ipaddress.ip_network(cidr) for cidr in cidrs)
        if net.version == version
    )
    merged: list[_Interval] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _minus(keep: list[_Interval], drop: list[_Interval]) -> Iterator[_Interval]:
    """``keep`` minus ``drop``, both merged and sorted: one sweep over the two lists."""
    index = 0
    for first, last in keep:
        start = first
        while index < len(drop) and drop[index][1] < start:
            index += 1
        cursor = index
        while cursor < len(drop) and drop[cursor][0] <= last:
            if drop[cursor][0] > start:
                yield start, drop[cursor][0] - 1
            start = max(start, drop[cursor][1] + 1)
            cursor += 1
        if start <= last:
            yield start, last


def iter_allowed_networks(allow: tuple[str, ...], deny: tuple[str, ...]) -> Iterator[IPNetwork]:
    """The client ranges a route admits, IPv4 first, each version in address order, lazily."""
    allowed = allow or _EVERYONE
    for version, address in ((4, ipaddress.IPv4Address), (6, ipaddress.IPv6Address)):
        for first, last in _minus(_intervals(allowed, version), _intervals(deny, version)):
            yield from ipaddress.summarize_address_range(address(first), address(last))


def allowed_networks(allow: tuple[str, ...], deny: tuple[str, ...]) -> list[IPNetwork]:
    """The client ranges a route admits: ``allow`` (everything when empty) minus ``deny``, collapsed."""
    return list(iter_allowed_networks(allow, deny))


# Every load checks every route, and most share one list (none, or the platform's office ranges): computed once.
@lru_cache(maxsize=256)
def count_allowed_networks(allow: tuple[str, ...], deny: tuple[str, ...], stop_after: int) -> int:
    """How many ranges ``allowed_networks`` returns, counting no further than ``stop_after + 1``."""
    count = 0
    for _network in iter_allowed_networks(allow, deny):
        count += 1
        if count > stop_after:
            break
    return count

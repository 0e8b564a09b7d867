"""Which address a new tenant container gets on its network: in turn, never one that was in use a moment ago.

Used by ``drivers.docker.driver``: ``observe`` tells it the owned networks' subnets and the addresses their
containers hold; ``run_container`` asks it for an address (with the network's live endpoints) and creates the
container with that address. No I/O here.

Why: the engine's own allocator gives the lowest free address, so a container replaced after ``docker rm -f`` or
a crash gets exactly its predecessor's address. For a moment that address is unreachable from the host: the
host's neighbour (ARP) entry for it went INCOMPLETE while nobody held it, and is resolved again only at the next
ARP retransmission (``retrans_time_ms``, 1 s), whatever the new container does. Traefik's health check of that same
URL meanwhile times out, marks it DOWN after the replacement is already up, and readmits it one probe later: a
heal took 1.3-2.0 s to serve instead of 0.7 s (docs/benchmarks.md, issue 12). A fresh address is resolved on the
first packet, and the route file then names a new server, which Traefik admits as soon as it loads the file.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable

# An address seen in use within this many seconds is handed out again only when no other address is free: longer
# than the host's failed neighbour entries and Traefik's health state of a server last for.
QUARANTINE = 60.0


class AddressRotation:
    """Per network: the subnet, when each address was last seen in use, and where the rotation stands."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, quarantine: float = QUARANTINE) -> None:
        self._clock = clock
        self._quarantine = quarantine
        self._lock = threading.Lock()
        self._subnets: dict[str, ipaddress.IPv4Network] = {}
        self._seen: dict[str, dict[int, float]] = {}
        self._cursor: dict[str, int] = {}

    def observed(self, subnets: Iterable[tuple[str, str | None]], addresses: Iterable[tuple[str, str | None]]) -> None:
        """Owned networks as (name, subnet) and containers' addresses as (network, ip), from one snapshot."""
        now = self._clock()
        with self._lock:
            for name, subnet in subnets:
                parsed = _ipv4_network(subnet)
                if parsed is not None:
                    self._subnets[name] = parsed
            for network, ip in addresses:
                value = _ipv4(ip)
                if value is not None and network in self._subnets:
                    self._mark(network, value, now)

    def subnet(self, network: str) -> str | None:
        with self._lock:
            known = self._subnets.get(network)
        return str(known) if known is not None else None

    def pick(self, network: str, in_use: Iterable[str]) -> str | None:
        """The next free address after the last one handed out, skipping the gateway and any address seen in use
        within the quarantine (unless nothing else is free). None: the subnet is unknown (the engine chooses) or
        full. The address is marked in use at once, so concurrent creates on one network get different ones."""
        with self._lock:
            subnet = self._subnets.get(network)
            if subnet is None:
                return None
            now = self._clock()
            taken = {value for value in map(_ipv4, in_use) if value is not None}
            for value in taken:
                self._mark(network, value, now)
            first, last = int(subnet.network_address) + 2, int(subnet.broadcast_address) - 1  # .1 is the gateway
            if last < first:
                return None
            seen = self._seen.get(network, {})
            size = last - first + 1
            start = self._cursor.get(network, max(seen, default=first - 1)) + 1
            chosen: int | None = None
            fallback: int | None = None
            for step in range(size):
                value = first + (start - first + step) % size
                if value in taken:
                    continue
                if now - seen.get(value, now - self._quarantine - 1) > self._quarantine:
                    chosen = value
                    break
                fallback = value if fallback is None else fallback
            chosen = chosen if chosen is not None else fallback
            if chosen is None:
                return None
            self._cursor[network] = chosen
            self._mark(network, chosen, now)
            return str(ipaddress.IPv4Address(chosen))

    def _mark(self, network: str, value: int, now: float) -> None:
        self._seen.setdefault(network, {})[value] = now


def _ipv4_network(subnet: str | None) -> ipaddress.IPv4Network | None:
    try:
        parsed = ipaddress.ip_network(subnet or "", strict=False)
    except ValueError:
        return None
    return parsed if isinstance(parsed, ipaddress.IPv4Network) else None


def _ipv4(ip: str | None) -> int | None:
    try:
        parsed = ipaddress.ip_address((ip or "").split("/")[0])
    except ValueError:
        return None
    return int(parsed) if isinstance(parsed, ipaddress.IPv4Address) else None

"""Every bound on a value read from the desired-state tables, in one place (docs/schema.md "Bounds").

Read by the specs (``desired_state.inputs``, ``desired_state.specs``) and the loader. The constants are hard
limits: past them a value is nonsense whatever the host (a 400-digit memory size, a 10 MB env map) and is
refused before any arithmetic on it. ``InputLimits`` holds the few bounds an operator must be able to change
(``RECONCILER_MAX_SERVICE_MEMORY`` and friends, read by ``reconciler.runtime.settings``); its defaults fit the
host the reconciler runs on, because Docker refuses a memory or CPU limit the host cannot give.
No I/O here except reading the host's memory size and CPU count in ``InputLimits.for_host``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4

# Docker refuses memory limits under 6 MiB.
MIN_MEMORY = 6 * MiB
# No host has more; a size past it is a typo or an attack, refused before it is multiplied out.
MAX_MEMORY = 64 * TiB
# Digits in a memory size: enough for MAX_MEMORY in bytes (14 digits) with a fraction; a 400-digit string is
# refused as text, so no float ever overflows.
MAX_SIZE_DIGITS = 20
# Docker's own ceiling for --cpus is the host's CPU count; this is the hard limit for any host.
MAX_CPUS = 64.0
MIN_CPUS = 0.01  # Docker's smallest --cpus
MAX_REPLICAS = 20
# Two versions is what a weighted upgrade needs (old and new); more would make weights hard to reason about.
MAX_VERSIONS = 2
MAX_WEIGHT = 1000
# Services of one tenant: one per catalog entry in practice; a bound so a flood of rows cannot slow a pass.
MAX_SERVICES = 64

# Environment: names as POSIX shells accept them; values end up in the container's environment block, whose
# total the kernel caps (ARG_MAX, 2 MiB with the argv); a NUL byte cannot be passed at all.
MAX_ENV_VARS = 256
MAX_ENV_NAME = 128
MAX_ENV_VALUE = 32 * KiB
MAX_ENV_TOTAL = 256 * KiB

# Names and paths that end up in Docker names, Traefik rules or URLs.
MAX_IMAGE_REF = 255  # the column's size
MAX_HOST = 253  # DNS
MAX_URL_PATH = 255  # route path prefix and health path
MAX_MIGRATE_ARGS = 64
MAX_MIGRATE_ARG = 4 * KiB

# Allow and deny lists: entries per list, and ranges the pair compiles to (Traefik has only an allow list, so
# a deny list becomes its complement: one /128 denied out of ::/0 is 128 ranges).
MAX_CIDRS = 500
MAX_ALLOWED_RANGES = 4096

# A JSON column (env, allow, deny, migrate) longer than this is refused before it is decoded.
MAX_JSON_TEXT = 1 * MiB

# Priority of an operation request (``operation_requests.priority``, written by the UI): a small range is all a
# UI needs to say "before the others", and a bounded one keeps a hostile row from meaning anything odd.
MIN_REQUEST_PRIORITY = -100
MAX_REQUEST_PRIORITY = 100

# Error messages show at most this many characters of a bad value (then an ellipsis).
MAX_SHOWN_VALUE = 60


@dataclass(frozen=True)
class InputLimits:
    """The bounds an operator may change (settings), checked on every tenant's resolved services."""

    max_service_memory: int = MAX_MEMORY
    max_service_cpus: float = MAX_CPUS
    max_allowed_ranges: int = MAX_ALLOWED_RANGES

    @classmethod
    def for_host(
        cls,
        max_service_memory: int | None = None,
        max_service_cpus: float | None = None,
        max_allowed_ranges: int = MAX_ALLOWED_RANGES,
    ) -> InputLimits:
        """Given limits, else the host's physical memory and CPU count (what Docker would accept)."""
        return cls(
            max_service_memory=min(max_service_memory or host_memory(), MAX_MEMORY),
            max_service_cpus=min(max_service_cpus or float(os.cpu_count() or 1), MAX_CPUS),
            max_allowed_ranges=max_allowed_ranges,
        )


def host_memory() -> int:
    """Physical memory of this host in bytes; MAX_MEMORY where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return MAX_MEMORY

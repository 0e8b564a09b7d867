"""Memory sizes as operators write them (``64M``, ``1g``, ``512MiB`` or bytes) ↔ bytes (pure).

Used by the input models (``desired_state.inputs``) to read sizes and by YAML export and plan output to write
them. A size is parsed in integer arithmetic from a bounded number of digits, so no input can overflow a float.
"""

from __future__ import annotations

import re

from desired_state.bounds import MAX_MEMORY, MAX_SIZE_DIGITS, MIN_MEMORY

_SIZE_RE = re.compile(r"^\s*(\d+)(?:\.(\d+))?\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_NOT_A_SIZE = "is not a size; use bytes or a number with K, M or G, e.g. 64M"


def _parse_text(value: str) -> int:
    if sum(c.isdigit() for c in value) > MAX_SIZE_DIGITS:
        raise ValueError(f"has more than {MAX_SIZE_DIGITS} digits; use a unit, e.g. 64M or 2G")
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(_NOT_A_SIZE)
    whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3).lower()
    factor = _SIZE_UNITS[unit]
    scale: int = 10 ** len(fraction)
    return int(whole) * factor + int(fraction or "0") * factor // scale


def parse_memory(value: object) -> int:
    """Bytes of a Docker-style size; raises ``ValueError`` saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError(_NOT_A_SIZE)
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str):
        size = _parse_text(value)
    else:
        raise ValueError(_NOT_A_SIZE)
    if size < MIN_MEMORY:
        raise ValueError("is below the 6M minimum Docker accepts")
    if size > MAX_MEMORY:
        raise ValueError(f"is more than {format_memory(MAX_MEMORY)}, more than any host has")
    return size


def format_memory(size: int) -> str:
    """Render bytes the way operators write them (``64M``), for YAML export and plan output."""
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)

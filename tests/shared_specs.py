"""The official schemas the tests validate against (Compose, Traefik v3, PowerDNS API), vendored beside the
repository in ``../shared/specs`` (see its SOURCES.md); they are not part of this repository.

A clone on its own has no ``../shared``. There a test that exists to check a schema is SKIPPED with a message
naming the missing file, and tests that only validate on the side run without that extra check. In CI (``CI``
set to true, as GitHub Actions and most runners do) a missing schema FAILS the test instead: CI must check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SPECS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "specs"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _missing(name: str) -> str:
    return (
        f"{SPECS_DIR / name} is missing: the official schemas live beside the repository in ../shared/specs "
        "(copy them there to run the schema checks)"
    )


def spec_path(name: str) -> Path:
    """The schema file; skips the calling test when it is missing (fails it in CI)."""
    path = SPECS_DIR / name
    if path.is_file():
        return path
    if in_ci():
        pytest.fail(f"{_missing(name)}; CI must run the schema checks", pytrace=False)
    pytest.skip(_missing(name))


def optional_spec_path(name: str) -> Path | None:
    """The schema file, or None outside CI when it is missing (the caller then validates nothing extra)."""
    path = SPECS_DIR / name
    if path.is_file():
        return path
    if in_ci():
        pytest.fail(f"{_missing(name)}; CI must run the schema checks", pytrace=False)
    return None

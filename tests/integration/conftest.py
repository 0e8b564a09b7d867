"""Fixtures for integration tests that run the reconciler against the real engine and databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.harness import Harness
from tests.integration.sites_support import SitesRig, sites_rig
from tests.integration.swarm import SwarmLab, start_lab


@pytest.fixture
def harness(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str) -> Iterator[Harness]:
    """A reconciler on a fresh PostgreSQL database with this test's owner id; `reconciler run` stopped after."""
    h = Harness.create(owner_id, postgres_url, docker_client)
    try:
        yield h
    finally:
        h.stop_run()
        h.rt.engine.dispose()


@pytest.fixture
def sites(postgres_url: str, owner_id: str) -> Iterator[SitesRig]:
    """Our own Nginx on a free 127.0.0.1 port with the sites stage wired to a fresh PostgreSQL database."""
    yield from sites_rig(postgres_url, owner_id)


@pytest.fixture(scope="session")
def swarm_lab() -> Iterator[SwarmLab]:
    """The three-node Swarm lab (scripts/swarm.sh), once per session; skipped (failed in CI) if it cannot start."""
    yield from start_lab()

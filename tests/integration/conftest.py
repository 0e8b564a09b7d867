"""Fixtures for integration tests that run the reconciler against the real engine and databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.harness import Harness


@pytest.fixture
def harness(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str) -> Iterator[Harness]:
    """A reconciler on a fresh PostgreSQL database with this test's owner id; `reconciler run` stopped after."""
    h = Harness.create(owner_id, postgres_url, docker_client)
    try:
        yield h
    finally:
        h.stop_run()
        h.rt.engine.dispose()

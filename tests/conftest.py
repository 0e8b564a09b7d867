"""Shared fixtures: a throwaway PostgreSQL cluster (more services follow in deploy/devstack.py).

A service that cannot be started makes the test FAIL with the reason, never skip.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "deploy"))

import devstack  # noqa: E402


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Postgres]:
    """A PostgreSQL 15 cluster for the whole session, on a free port, removed at the end."""
    pg = devstack.Postgres(tmp_path_factory.mktemp("postgres"))
    try:
        pg.start()
    except Exception as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield pg
    pg.remove()


@pytest.fixture
def postgres_url(postgres_cluster: devstack.Postgres) -> Iterator[str]:
    """URL of a fresh, empty database (unique name) on the session cluster; dropped afterwards."""
    try:
        url = postgres_cluster.create_database()
    except Exception as exc:
        pytest.fail(f"could not create a PostgreSQL database: {exc}", pytrace=False)
    yield url
    postgres_cluster.drop_database(url.rsplit("/", 1)[1])

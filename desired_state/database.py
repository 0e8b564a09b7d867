"""Database connection and schema migrations for the desired-state store.

Entry point of the storage layer: the CLI and the runtime call ``make_engine(database_url(setting))`` once
in ``main`` and hand the engine to ``load``, ``yaml_io`` and ``status``; ``upgrade`` brings the schema to
the current Alembic head (the reconciler owns these tables, the web UI only reads and writes rows).
PostgreSQL is the production store shared with the UI; SQLite is for a single-machine demo and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE_FILE = "reconciler.sqlite3"
# Seconds a SQLite writer waits for another process's lock (the CLI next to a running reconciler)
# before failing with "database is locked".
SQLITE_BUSY_TIMEOUT = 30
# Seconds to wait for a PostgreSQL connection; a dead server must fail a pass, not hang it.
POSTGRES_CONNECT_TIMEOUT = 10
# Key of the PostgreSQL advisory lock held while migrating, so two reconcilers starting at once do not
# both try to create the tables. Any fixed number unique to this application will do.
MIGRATION_LOCK_KEY = 0x7E4A_11C0

_SUPPORTED = "sqlite:///path/to/file.sqlite3, postgresql://user:password@host:5432/db or postgresql+psycopg2://..."


def database_url(url: str | None) -> str:
    """The SQLAlchemy URL to use for a configured value; ``None`` or empty means a SQLite file in the cwd.

    Accepts ``sqlite://``, ``postgresql://`` and ``postgresql+psycopg2://`` (and ``postgres://`` as written
    by some hosting tools). PostgreSQL URLs come back as ``postgresql+psycopg2://``: SQLAlchemy 2.1 picks
    psycopg 3 for a bare ``postgresql://``, and the installed driver is psycopg2. Raises ``ValueError`` for
    anything else.
    """
    if url is None or not url.strip():
        return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
    url = url.strip()
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            url = "postgresql+psycopg2://" + url.removeprefix(bare)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"database URL is not a URL (expected {_SUPPORTED})") from exc
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg2"):
        # The scheme only: the rest of the URL may hold a password.
        raise ValueError(f"database URL scheme {parsed.drivername!r} is not supported (expected {_SUPPORTED})")
    return url


def make_engine(url: str | None) -> Engine:
    """An engine for ``database_url(url)`` with the per-backend settings the reconciler relies on."""
    resolved = make_url(database_url(url))
    if resolved.get_backend_name() == "sqlite":
        engine = create_engine(resolved, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        _configure_sqlite(engine)
        return engine
    # pool_pre_ping: the runtime holds the engine for days; PostgreSQL restarts must not fail the next pass.
    return create_engine(resolved, pool_pre_ping=True, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT})


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite opens transactions lazily and commits behind our back around DDL; turn that off and
        # emit BEGIN ourselves (below) so a transaction here is a real one, as on PostgreSQL: the three
        # load queries see one snapshot and an import is all-or-nothing.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # SQLite ignores foreign keys (and ON DELETE CASCADE) unless asked, per connection.
            cursor.execute("PRAGMA foreign_keys = ON")
            # WAL lets readers (``reconciler plan``) run while the reconciler writes statuses.
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to the busy timeout). A deferred BEGIN that reads,
        # then writes after another thread committed (status write-back next to the usage collector or an
        # operation) fails at once with "database is locked": SQLite cannot upgrade a stale read snapshot.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    # Built in code so the reconciler migrates from any working directory, installed or not. Alembic is imported
    # here and in the functions below, not at module level: it costs a one-shot command (plan, apply, status) more
    # than a tenth of a second and only ``db`` commands and tests migrate.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(target: Engine | str | None, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (idempotent: nothing happens at head)."""
    from alembic import command

    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Released at commit; a second reconciler waits here, then finds the schema at head.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if engine is not target:
            engine.dispose()


def current_revision(target: Engine | str | None) -> str | None:
    """The schema revision the database is at, or ``None`` if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if engine is not target:
            engine.dispose()


def head_revision() -> str:
    """The newest revision shipped with this package: what ``upgrade`` migrates to."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head

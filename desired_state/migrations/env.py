"""Alembic environment for the desired-state schema.

Run by ``desired_state.database.upgrade`` (which passes an open connection in ``config.attributes``), so no
alembic.ini is needed. Without a connection it builds an engine from the ``sqlalchemy.url`` option, and in
offline mode (``--sql``) it prints the DDL, which is how the web UI team can read the exact schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from desired_state.database import make_engine
from desired_state.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode lets later migrations stay portable.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

"""What every table class stands on: the declarative ``Base``, Laravel's id and timestamp columns, UTC timestamps.

First stage of the pipeline, under every table module (``desired_state.tenant_tables``, ``status_tables``,
``operation_tables`` and the ``*_tables`` modules of sites, canaries, checks, access and placements), which all
share the one ``Base.metadata`` the Alembic migrations are checked against. Import these names from
``desired_state.tables``, which re-exports them and registers every table on that metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY; PostgreSQL gets Laravel's bigint.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz`` and returns aware values; SQLite stores text without an offset and
    returns naive values. Normalising both here means comparisons in status and import code never mix
    naive and aware datetimes. Naive input is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite would store the offset as part of the text and then fail to compare with naive rows.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime()}


class TimestampsMixin:
    """Laravel's ``timestampsTz()``: both nullable, maintained by whoever writes the row."""

    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

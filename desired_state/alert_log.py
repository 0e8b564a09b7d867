"""The alerts sent: every alert the runtime raised, with what became of it (sent to Telegram, only logged, dropped).

Written by the runtime's ``Alerter`` (``reconciler.runtime.telemetry.alerts``, through the hook the wiring gives
it), read by the HTTP API (``GET /api/v1/alerts``) and the console. Created by migration 0012; registered on
``Base.metadata`` by ``desired_state.tables``. A failed write is the caller's to log: an alert is never held up by
the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, String, Text, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.tables import Base, BigIntId, UtcDateTime

MAX_TEXT = 4000


class AlertEvent(Base):
    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    # queued (handed to the Telegram sender) | logged (no bot configured) | dropped (rate limit or backlog)
    outcome: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class AlertRecord:
    id: int
    at: datetime
    outcome: str
    text: str


def record_alert(engine: Engine, text: str, outcome: str) -> None:
    with engine.begin() as connection:
        connection.execute(insert(AlertEvent).values(at=datetime.now(UTC), outcome=outcome, text=text[:MAX_TEXT]))


def recent_alerts(engine: Engine, limit: int = 100, containing: str | None = None) -> list[AlertRecord]:
    """The newest alerts first; ``containing``: only those whose text has it (a tenant's name, say)."""
    query = select(AlertEvent).order_by(AlertEvent.id.desc()).limit(limit)
    if containing:
        query = query.where(AlertEvent.text.contains(containing, autoescape=True))
    with engine.connect() as connection:
        return [AlertRecord(id=r.id, at=r.at, outcome=r.outcome, text=r.text) for r in connection.execute(query)]

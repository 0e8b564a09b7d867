"""The alerts sent: every alert the runtime raised, with what became of it (sent to Telegram or failed after the
sender's retries, only logged, dropped).

Written by the runtime's ``Alerter`` (``reconciler.runtime.telemetry.alerts``, through the hooks the wiring gives
it): ``record_alert`` when the alert is raised (``queued`` when handed to the Telegram sender), then, once the
sender finished with it, ``record_delivery`` on the same row (``sent`` or ``failed``, the attempts, the last
error already scrubbed of the bot token). Read by the HTTP API (``GET /api/v1/alerts``) and the console. Created by
migration 0012, the delivery columns by 0016; registered on ``Base.metadata`` by ``desired_state.tables``. A
failed write is the caller's to log: an alert is never held up by the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, Integer, String, Text, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.specs import shorten
from desired_state.tables import Base, BigIntId, UtcDateTime

MAX_TEXT = 4000
# An error is one line for an operator, not a traceback.
MAX_ERROR = 300
OUTCOMES = ("queued", "sent", "failed", "logged", "dropped")
DELIVERED = ("sent", "failed")


class AlertEvent(Base):
    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    # queued (handed to the Telegram sender, not finished yet) → sent | failed; logged (no bot configured);
    # dropped (rate limit or backlog)
    outcome: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    # Set when the sender finished with a queued alert (migration 0016).
    attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


@dataclass(frozen=True)
class AlertRecord:
    id: int
    at: datetime
    outcome: str
    text: str
    attempts: int | None = None
    error: str | None = None
    finished_at: datetime | None = None


def record_alert(engine: Engine, text: str, outcome: str) -> int:
    """Store a raised alert; returns its row id (for ``record_delivery``)."""
    with engine.begin() as connection:
        inserted = connection.execute(
            insert(AlertEvent).values(at=datetime.now(UTC), outcome=outcome, text=text[:MAX_TEXT])
        )
        return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def record_delivery(engine: Engine, alert_id: int, outcome: str, attempts: int, error: str | None) -> None:
    """What the sender made of queued alert ``alert_id``: ``sent`` or ``failed`` after ``attempts`` tries.
    ``error`` must already be free of secrets (the sender scrubs the bot token); it is shortened here."""
    if outcome not in DELIVERED:
        raise ValueError(f"alert {alert_id}: delivery outcome {outcome[:20]!r} is not one of {', '.join(DELIVERED)}")
    with engine.begin() as connection:
        connection.execute(
            update(AlertEvent)
            .where(AlertEvent.id == alert_id)
            .values(
                outcome=outcome,
                attempts=attempts,
                error=shorten(" ".join(error.split()), MAX_ERROR) if error else None,
                finished_at=datetime.now(UTC),
            )
        )


def recent_alerts(engine: Engine, limit: int = 100, containing: str | None = None) -> list[AlertRecord]:
    """The newest alerts first; ``containing``: only those whose text has it (a tenant's name, say)."""
    query = select(AlertEvent).order_by(AlertEvent.id.desc()).limit(limit)
    if containing:
        query = query.where(AlertEvent.text.contains(containing, autoescape=True))
    with engine.connect() as connection:
        return [
            AlertRecord(
                id=r.id,
                at=r.at,
                outcome=r.outcome,
                text=r.text,
                attempts=r.attempts,
                error=r.error,
                finished_at=r.finished_at,
            )
            for r in connection.execute(query)
        ]

"""Site status write-back: the reconciler's view of each site, in ``site_statuses`` (read by the UI).

Last step of the sites stage (``reconciler.runtime.passes.sites_step``). Conditions carry their last transition
like tenants' (``desired_state.status``): a condition whose status did not change keeps its stored time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from desired_state.model import Condition
from desired_state.site_tables import SiteStatusRow


@dataclass(frozen=True)
class SiteStatus:
    site: str
    phase: str  # Ready | Failed | Removed
    conditions: tuple[Condition, ...] = ()
    observed_generation: int | None = None
    last_error: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


def write_site_statuses(engine: Engine, statuses: Sequence[SiteStatus], *, now: datetime | None = None) -> None:
    if not statuses:
        return
    moment = now or datetime.now(UTC)
    with engine.begin() as connection:
        stored = {s.site: s for s in _read(connection)}
        for status in statuses:
            _write(connection, status, stored.get(status.site), moment)


def read_site_statuses(engine: Engine) -> list[SiteStatus]:
    with engine.connect() as connection:
        return _read(connection)


def _read(connection: Connection) -> list[SiteStatus]:
    rows = connection.execute(select(SiteStatusRow).order_by(SiteStatusRow.site)).mappings().all()
    return [
        SiteStatus(
            site=row["site"],
            phase=row["phase"],
            conditions=tuple(_condition(c) for c in row["conditions"] or []),
            observed_generation=row["observed_generation"],
            last_error=row["last_error"],
        )
        for row in rows
    ]


def _condition(raw: dict[str, Any]) -> Condition:
    when = raw.get("last_transition")
    return Condition(
        type=str(raw["type"]),
        status=raw["status"],
        reason=str(raw.get("reason", "")),
        message=str(raw.get("message", "")),
        last_transition=datetime.fromisoformat(when) if when else None,
    )


def _write(connection: Connection, status: SiteStatus, stored: SiteStatus | None, now: datetime) -> None:
    previous = {c.type: c for c in stored.conditions} if stored is not None else {}
    conditions = []
    for condition in status.conditions:
        before = previous.get(condition.type)
        kept = before.last_transition if before is not None and before.status == condition.status else None
        when = kept or condition.last_transition or now
        conditions.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "last_transition": when.isoformat(),
            }
        )
    values: dict[str, Any] = {
        "site": status.site,
        "phase": status.phase,
        "conditions": conditions,
        "observed_generation": status.observed_generation,
        "last_error": status.last_error,
        "updated_at": now,
    }
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(SiteStatusRow).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[SiteStatusRow.site], set_={k: v for k, v in values.items() if k != "site"}
    )
    connection.execute(statement)

"""Backup schedules: cron text as operators write it → the fields of a cron trigger (pure).

Accepted (docs/operations-backups.md):

- five fields, standard cron: ``minute hour day month weekday`` (``0 3 * * *``: every day at 03:00 UTC);
- six fields, seconds first: ``second minute hour day month weekday`` (``*/20 * * * * *``: every 20 seconds);
- ``@hourly``, ``@daily`` (= ``@midnight``), ``@weekly``, ``@monthly``.

Weekday numbers follow cron (0 and 7 are Sunday) and are turned into names, because APScheduler 3 counts from
Monday. Called by ``runtime.operations.backup_schedule`` when it (re)reads ``backup_policies``.
"""

from __future__ import annotations

import re

FIELDS = ("second", "minute", "hour", "day", "month", "day_of_week")
_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FIELD_RE = re.compile(r"^[A-Za-z0-9*/,\-?]+$")
_NUMBER_RE = re.compile(r"\d+")


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message shows what is accepted."""


def parse_schedule(text: str) -> dict[str, str]:
    """The cron trigger fields (``FIELDS``) for a schedule; raises ``ScheduleError``."""
    expr = _ALIASES.get(text.strip().lower(), text.strip())
    parts = expr.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise ScheduleError(
            f"schedule {text!r} has {len(parts)} fields; use 5 (minute hour day month weekday, e.g. '0 3 * * *'), "
            "6 with seconds first (e.g. '*/20 * * * * *') or @hourly, @daily, @weekly, @monthly"
        )
    for name, part in zip(FIELDS, parts, strict=True):
        if not _FIELD_RE.match(part):
            raise ScheduleError(f"schedule {text!r}: {name} field {part!r} has characters cron does not use")
    fields = dict(zip(FIELDS, parts, strict=True))
    fields["day_of_week"] = _cron_weekdays(text, fields["day_of_week"])
    return fields


def _cron_weekdays(text: str, field: str) -> str:
    """Cron weekday numbers (0-7, Sunday first) as a list of names; ``*``, steps on ``*`` and names stay as they are.

    Numeric ranges are spelled out day by day, because a cron range such as ``0-6`` would run backwards in
    APScheduler's Monday-first numbering.
    """
    out: list[str] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        if not _NUMBER_RE.fullmatch(base.replace("-", "", 1)):
            out.append(part)
            continue
        first_text, _, last_text = base.partition("-")
        first, last = int(first_text), int(last_text or first_text)
        step = int(step_text) if step_text.isdigit() else 1
        if not (0 <= first <= 7 and 0 <= last <= 7) or first > last or step < 1:
            raise ScheduleError(
                f"schedule {text!r}: weekday {part!r} is not a weekday or an ascending range of weekdays "
                "within 0-7 (0 and 7 are Sunday), e.g. 1-5"
            )
        out.extend(_WEEKDAYS[day] for day in range(first, last + 1, step))
    return ",".join(dict.fromkeys(out))

"""Unit tests for backup schedules: cron text → cron trigger fields (``reconciler.core.schedule``)."""

from __future__ import annotations

import pytest

from reconciler.core.schedule import ScheduleError, parse_schedule


def test_five_fields_run_at_second_zero() -> None:
    assert parse_schedule("30 2 * * *") == {
        "second": "0",
        "minute": "30",
        "hour": "2",
        "day": "*",
        "month": "*",
        "day_of_week": "*",
    }


def test_six_fields_take_seconds_first() -> None:
    fields = parse_schedule("*/2 * * * * *")
    assert fields["second"] == "*/2" and fields["minute"] == "*"


@pytest.mark.parametrize(
    ("text", "weekdays"),
    [
        ("0 3 * * 0", "sun"),
        ("0 3 * * 7", "sun"),
        ("0 3 * * 1-5", "mon,tue,wed,thu,fri"),
        ("0 3 * * 0-6", "sun,mon,tue,wed,thu,fri,sat"),
        ("0 3 * * 0,7", "sun"),
        ("0 3 * * 1-5/2", "mon,wed,fri"),
        ("0 3 * * mon-fri", "mon-fri"),
        ("0 3 * * */2", "*/2"),
    ],
)
def test_weekday_numbers_count_from_sunday_as_in_cron(text: str, weekdays: str) -> None:
    assert parse_schedule(text)["day_of_week"] == weekdays


@pytest.mark.parametrize(
    ("alias", "expected"), [("@daily", "0 0 * * *"), ("@hourly", "0 * * * *"), ("@weekly", "0 0 * * 0")]
)
def test_aliases(alias: str, expected: str) -> None:
    assert parse_schedule(alias) == parse_schedule(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * *", "has 3 fields"),
        ("0 3 * * 8", "weekday '8'"),
        ("0 3 * * 5-2", "ascending range"),
        ("0 3 * * $(rm)", "characters cron does not use"),
        ("", "has 0 fields"),
    ],
)
def test_bad_schedules_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace("$", r"\$")):
        parse_schedule(text)

"""Nudge message parsing and alert dedup / rate limit (issue 5); the broker and the Bot API are in integration."""

from __future__ import annotations

import json

import pytest

from desired_state.model import Condition, TenantStatus
from reconciler.runtime.service.nudges import MAX_MESSAGE_BYTES, MalformedNudge, Nudge, parse_nudge
from reconciler.runtime.telemetry.alerts import Alerter


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"tenant": "acme"}', Nudge("acme")),
        (b'{"all": true, "reason": "bulk import"}', Nudge(None, "bulk import")),
        (
            b'{"tenant": "acme", "reason": "deploy", "requested_by": "alice", "ui_version": 3}',
            Nudge("acme", "deploy", "alice"),
        ),
        (b'{"tenant": "acme", "all": false}', Nudge("acme")),
    ],
)
def test_valid_nudges(body: bytes, expected: Nudge) -> None:
    assert parse_nudge(body) == expected
    assert parse_nudge(expected.encode()) == expected


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"reconcile acme please", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b'["acme"]', "invalid"),
        (b"{}", "invalid"),
        (b'{"tenant": "acme", "all": true}', "invalid"),
        (b'{"tenant": 42}', "invalid"),
        (b'{"tenant": ""}', "invalid"),
        (b'{"all": "yes"}', "invalid"),
        (b'{"tenant": "acme", "reason": {"nested": 1}}', "invalid"),
        (json.dumps({"tenant": "x" * 101}).encode(), "invalid"),
        (b"x" * (1024 * 1024), "too_large"),
        (b'{"tenant": "acme", "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}', "too_large"),
    ],
)
def test_malformed_nudges_say_why(body: bytes, outcome: str) -> None:
    with pytest.raises(MalformedNudge) as caught:
        parse_nudge(body)
    assert caught.value.outcome == outcome


def _status(tenant: str, *conditions: Condition) -> TenantStatus:
    return TenantStatus(tenant, "Ready", conditions)


def test_alerts_on_transitions_only_and_deduplicated() -> None:
    sent: list[str] = []
    alerts = Alerter(sent.append, per_minute=100)
    alerts.notify = sent.append  # type: ignore[method-assign]  (synchronous, for the test)
    ok = Condition("Degraded", "False", "NoCrashLoop")
    bad = Condition("Degraded", "True", "CrashLoop", "a replica 0 died 3 times")
    alerts.on_status(None, _status("acme", ok))
    alerts.on_status(_status("acme", ok), _status("acme", bad))
    alerts.on_status(_status("acme", bad), _status("acme", bad))
    alerts.on_status(_status("acme", ok), _status("acme", bad))  # a pass without the stored verdict: deduped
    alerts.on_status(_status("acme", bad), _status("acme", ok))
    alerts.on_status(_status("acme", ok), _status("acme", ok))
    assert len(sent) == 2
    assert "acme degraded" in sent[0] and "died 3 times" in sent[0]
    assert "acme recovered" in sent[1]

    conflict = Condition("DNSReady", "False", "Conflict", "acme.erp.test is held by another owner")
    alerts.on_status(None, _status("globex", conflict))
    alerts.on_status(_status("globex", conflict), _status("globex", conflict))
    assert len(sent) == 3 and "DNS conflict" in sent[2]

    alerts.mass_delete(())
    alerts.mass_delete(("mass delete refused: this pass would remove 6 of 6 owned containers",))
    alerts.mass_delete(("mass delete refused: this pass would remove 6 of 6 owned containers",))
    alerts.mass_delete(())
    assert len(sent) == 4 and sent[3].startswith("🛑 mass delete refused")


def test_alert_rate_limit_drops_the_excess() -> None:
    now = [0.0]
    logged: list[str] = []
    alerts = Alerter(None, per_minute=3, clock=lambda: now[0])
    alerts._count = logged.append  # type: ignore[method-assign]
    for index in range(5):
        alerts.notify(f"message {index}")
    assert logged == ["logged"] * 3 + ["dropped"] * 2
    now[0] = 20.0  # one token back after 20 s at 3 per minute
    alerts.notify("later")
    assert logged[-1] == "logged"


def test_a_send_that_succeeds_on_its_third_attempt_is_recorded_sent_after_three() -> None:
    failures = [ConnectionError("refused"), TimeoutError("slow")]
    sent: list[str] = []

    def sender(text: str) -> None:
        if failures:
            raise failures.pop(0)
        sent.append(text)

    rows: list[tuple[str, str]] = []
    outcomes: list[tuple[int, str, int, str | None]] = []

    def record(text: str, outcome: str) -> int:
        rows.append((text, outcome))
        return len(rows)

    alerts = Alerter(sender, per_minute=100, record=record, delivered=lambda *outcome: outcomes.append(outcome))
    alerts.start()
    alerts.notify("third time lucky")
    alerts.stop(timeout=30)
    assert sent == ["third time lucky"] and rows == [("third time lucky", "queued")]
    assert outcomes == [(1, "sent", 3, None)]

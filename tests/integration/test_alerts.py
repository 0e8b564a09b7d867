"""Issue 5, Telegram alerts through a local endpoint that speaks the Bot API (python-telegram-bot's base_url)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from reconciler.runtime.telemetry.alerts import build_alerter
from reconciler.runtime.telemetry.metrics import Metrics
from tests.integration.harness import Harness, wait_until
from tests.integration.runs import bot_api, free_port

pytestmark = pytest.mark.integration

TOKEN = "987654:alerts-test-token"
SMALL = """
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1}
tenants:
  - {name: acme, domain: acme.erp.test, services: {a: {replicas: 2}}}
  - {name: globex, domain: globex.erp.test, services: {a: {}}}
"""


def test_alerts_reach_the_bot_api_deduplicated_and_the_token_stays_out_of_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    metrics = Metrics()
    with bot_api(TOKEN) as api:
        alerts = build_alerter(TOKEN, "777", api.base_url, per_minute=20, metrics=metrics)
        alerts.start()
        alerts.transition("mass-delete", "refused", "🛑 mass delete refused: 6 of 6")
        alerts.transition("mass-delete", "refused", "🛑 mass delete refused: 6 of 6")
        alerts.notify("second message")
        alerts.stop(timeout=10)
        assert [m["text"] for m in api.messages] == ["🛑 mass delete refused: 6 of 6", "second message"]
        assert {m["chat_id"] for m in api.messages} == {"777"}
        assert api.calls.count("getMe") == 1

    # The endpoint is gone: sending fails after retries, is counted, and the log never shows the token.
    unreachable = build_alerter(TOKEN, "777", f"http://127.0.0.1:{free_port()}/bot", per_minute=20, metrics=metrics)
    unreachable.start()
    unreachable.notify("nobody listens")
    unreachable.stop(timeout=15)
    assert metrics.alerts.labels(outcome="sent")._value.get() == 2
    assert metrics.alerts.labels(outcome="failed")._value.get() == 1
    assert "alert not sent" in caplog.text
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text


def test_mass_delete_refused_alerts_once_under_reconciler_run(harness: Harness, tmp_path: Path) -> None:
    h = harness
    with bot_api(TOKEN) as api:
        h.env.update(
            {
                "RECONCILER_TELEGRAM_TOKEN": TOKEN,
                "RECONCILER_TELEGRAM_CHAT_ID": "1",
                "RECONCILER_TELEGRAM_BASE_URL": api.base_url,
            }
        )
        h.import_yaml(SMALL)
        assert h.apply().ok
        before = {c.id for c in h.containers()}
        h.start_run(log_path=tmp_path / "run.log")
        wait_until(lambda: api.texts("active reconciler"), timeout=20, what="the leader alert")
        h.execute_sql("DELETE FROM tenants")
        wait_until(lambda: api.texts("mass delete refused"), timeout=20, what="the mass-delete alert")
        time.sleep(5)  # a few more resync sweeps, each refusing again
        assert len(api.texts("mass delete refused")) == 1, api.texts()
        assert {c.id for c in h.containers()} == before
        assert h.stop_run() == 0
    assert TOKEN not in (tmp_path / "run.log").read_text()

"""Issue 14: what became of each alert, stored on its ``alert_events`` row and shown by ``GET /api/v1/alerts`` and
the console: delivered (sent, 1 attempt), or failed after the retries with the scrubbed error; a database that
refuses the writes neither stops nor loses a message. Real PostgreSQL, the runtime's own wiring
(``build_runtime``), and the local endpoint speaking the Bot API (Telegram is the one service faked)."""

from __future__ import annotations

import html
import logging
import socket
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from desired_state.access import create_token
from desired_state.alert_log import AlertRecord, recent_alerts, record_alert, record_delivery
from desired_state.database import make_engine, upgrade
from desired_state.yaml_io import import_yaml
from reconciler.runtime.telemetry.alerts import SEND_ATTEMPTS, Alerter, build_alerter
from reconciler.runtime.wiring import build_runtime
from tests.integration.api_support import CATALOG, PASSWORD, Api, api_server, console_login
from tests.integration.harness import wait_until
from tests.integration.runs import BotApi, bot_api, free_port

pytestmark = pytest.mark.integration

TOKEN = "424242:delivery-test-token"
# The tenants the alerts name: their console pages list them.
TENANTS = (
    "tenants:\n"
    "  - {name: acme, domain: acme.erp.test, state: stopped, services: {a: {}}}\n"
    "  - {name: globex, domain: globex.erp.test, state: stopped, services: {a: {}}}\n"
)


@pytest.fixture
def telegram() -> Iterator[BotApi]:
    with bot_api(TOKEN) as api:
        yield api


@pytest.fixture
def api(postgres_url: str, owner_id: str, telegram: BotApi, docker_client: Any) -> Iterator[Api]:
    bot = {"telegram_token": TOKEN, "telegram_chat_id": "777", "telegram_base_url": telegram.base_url}
    with api_server(postgres_url, owner_id, **bot) as served:
        import_yaml(served.engine, CATALOG + TENANTS)
        create_token(served.engine, "olga", "operator", password=PASSWORD)
        yield served


def _alerter(telegram: BotApi, *, rows: Engine, outcomes: Engine) -> Alerter:
    """The runtime's alerter sending to the local Bot API, its rows written to ``rows`` and outcomes to ``outcomes``."""
    return build_alerter(
        TOKEN,
        "777",
        telegram.base_url,
        per_minute=20,
        metrics=None,
        record=partial(record_alert, rows),
        delivered=partial(record_delivery, outcomes),
    )


def _raise(api: Api, *texts: str) -> None:
    """The alerts raised by the runtime ``reconciler run`` would build, sent (or given up) before returning."""
    runtime = build_runtime(api.settings, schedule=False)
    try:
        runtime.alerts.start()
        for text in texts:
            runtime.alerts.notify(text)
        runtime.alerts.stop(timeout=30)
    finally:
        runtime.engine.dispose()


def recent_alerts_of(database_url: str) -> list[AlertRecord]:
    engine = make_engine(database_url)
    try:
        return recent_alerts(engine)
    finally:
        engine.dispose()


def _listed(api: Api, tenant: str) -> list[dict[str, Any]]:
    with api.client("viewer") as http:
        answer = http.get("/api/v1/alerts", params={"tenant": tenant})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_a_delivered_alert_is_listed_sent_after_one_attempt(api: Api, telegram: BotApi) -> None:
    _raise(api, "⚠️ tenant acme degraded: replica a-0 restarted 3 times")
    assert telegram.texts() == ["⚠️ tenant acme degraded: replica a-0 restarted 3 times"]
    [alert] = _listed(api, "tenant acme")
    assert (alert["outcome"], alert["attempts"], alert["error"]) == ("sent", 1, None)
    assert alert["finished_at"] is not None and alert["finished_at"] >= alert["at"]
    with console_login(api, "olga") as browser:
        page = browser.get("/tenants/acme")
    assert f'data-alert="{alert["id"]}" data-outcome="sent"' in page.text and "sent to Telegram" in page.text


@pytest.mark.parametrize(
    ("status", "said"),
    [
        # The fake echoes the request path, token included, in its refusal: stored with the token scrubbed.
        (500, "NetworkError: refused (500) at /bot<token>/sendMessage"),
        # python-telegram-bot words a 429 itself, from the retry_after the fake gives.
        (429, "RetryAfter: Flood control exceeded. Retry in 1 seconds"),
    ],
)
def test_an_alert_the_bot_api_keeps_refusing_is_listed_failed_with_the_error_and_no_token(
    api: Api, telegram: BotApi, status: int, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.failing = status
    _raise(api, "🛑 tenant globex: VolumeLost: the data volume is gone")
    assert telegram.texts() == [] and telegram.calls.count("sendMessage") == SEND_ATTEMPTS
    [alert] = _listed(api, "tenant globex")
    assert (alert["outcome"], alert["attempts"]) == ("failed", SEND_ATTEMPTS)
    assert alert["error"] == said
    assert TOKEN not in alert["error"] and TOKEN.split(":")[1] not in alert["error"]
    assert len(alert["error"]) <= 300
    with console_login(api, "olga") as browser:
        page = browser.get("/tenants/globex")
    assert f'data-alert="{alert["id"]}" data-outcome="failed"' in page.text and html.escape(said) in page.text
    assert TOKEN.split(":")[1] not in page.text and TOKEN.split(":")[1] not in caplog.text


def test_a_database_refusing_the_writes_neither_stops_nor_loses_an_alert(
    postgres_url: str, telegram: BotApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    upgrade(postgres_url)
    # Nothing listens there: every write fails the way a PostgreSQL that went away does.
    away = make_engine(f"postgresql+psycopg2://reconciler:x@127.0.0.1:{free_port()}/none")
    live = make_engine(postgres_url)
    try:
        alerts = _alerter(telegram, rows=away, outcomes=away)
        alerts.start()
        alerts.notify("first: the row cannot be written")
        alerts.stop(timeout=30)
        # The row is written, only the outcome cannot be.
        alerts = _alerter(telegram, rows=live, outcomes=away)
        alerts.start()
        alerts.notify("second: its outcome cannot be written")
        alerts.stop(timeout=30)
    finally:
        away.dispose()
        live.dispose()
    assert telegram.texts() == ["first: the row cannot be written", "second: its outcome cannot be written"]
    assert "alert not recorded: OperationalError" in caplog.text
    assert "outcome sent not recorded: OperationalError" in caplog.text


def test_a_hanging_database_never_delays_the_next_alert(
    postgres_url: str, telegram: BotApi, caplog: pytest.LogCaptureFixture
) -> None:
    """The outcome's write hangs (a listener that never answers, where PostgreSQL should be): the next message is
    sent all the same, before that write has even given up."""
    caplog.set_level(logging.INFO)
    upgrade(postgres_url)
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: [held.append(silent.accept()[0]) for _ in range(2)], daemon=True)
    accepting.start()
    hanging = create_engine(
        f"postgresql+psycopg2://reconciler:x@127.0.0.1:{silent.getsockname()[1]}/none",
        connect_args={"connect_timeout": 5},
    )
    live = make_engine(postgres_url)
    try:
        alerts = _alerter(telegram, rows=live, outcomes=hanging)
        alerts.start()
        alerts.notify("one")
        alerts.notify("two")
        wait_until(lambda: len(telegram.texts()) == 2, timeout=60, what="both messages")
        # Both are out while the first outcome's write is still waiting on the silent listener.
        assert "not recorded" not in caplog.text
        wait_until(lambda: len(held) >= 1, timeout=30, what="the outcome's write reaching the silent listener")
        alerts.stop(timeout=30)
    finally:
        hanging.dispose()
        live.dispose()
        for connection in held:
            connection.close()
        silent.close()
    assert telegram.texts() == ["one", "two"]
    assert caplog.text.count("outcome sent not recorded: OperationalError") == 2
    # The rows exist, still queued: their outcome was the part that could not be written.
    assert [a.outcome for a in recent_alerts_of(postgres_url)] == ["queued", "queued"]

"""Issue 5 acceptance, crash loops and health: `reconciler run` on real Docker with a local Bot API endpoint.

A crash-looping container makes its tenant ``Degraded`` (reason and last log lines) with exactly one alert, the
reconciler leaves the container to its backoff instead of recreating it, and the fix brings one "recovered"
alert. A container whose Docker health check turns unhealthy is replaced.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from desired_state.status import read_status
from tests.integration.harness import Harness, wait_until
from tests.integration.runs import bot_api

pytestmark = pytest.mark.integration

TOKEN = "123456:crash-loop-test-token"
CATALOG = 'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1}\n'


def _tenant(env: str = "") -> str:
    service = f"      a: {{env: {{{env}}}}}\n" if env else "      a: {}\n"
    return f"{CATALOG}tenants:\n  - name: acme\n    domain: acme.erp.test\n    services:\n{service}"


def _degraded(h: Harness) -> str | None:
    status = read_status(h.rt.engine, "acme")
    condition = status.condition("Degraded") if status else None
    return condition.status if condition else None


def test_crash_loop_degrades_once_backs_off_and_recovers_once(harness: Harness, tmp_path: Path) -> None:
    h = harness
    with bot_api(TOKEN) as api:
        h.env.update(
            {
                "RECONCILER_TELEGRAM_TOKEN": TOKEN,
                "RECONCILER_TELEGRAM_CHAT_ID": "4242",
                "RECONCILER_TELEGRAM_BASE_URL": api.base_url,
                "RECONCILER_CRASHLOOP_DEATHS": "3",
                "RECONCILER_CRASHLOOP_WINDOW": "60",
                "RECONCILER_CRASHLOOP_BACKOFF_INITIAL": "8",
            }
        )
        h.import_yaml(_tenant('ERP_CRASH_AFTER: "2"'))
        log = tmp_path / "run.log"
        h.start_run(log_path=log)

        wait_until(lambda: _degraded(h) == "True", timeout=45, what="acme Degraded")
        status = read_status(h.rt.engine, "acme")
        assert status is not None and status.phase == "Degraded"
        condition = status.condition("Degraded")
        assert condition is not None and condition.reason == "CrashLoop"
        assert "died 3 times in 60s" in condition.message and "exited with code 1" in condition.message
        assert "crashing after 2s as asked" in condition.message  # the container's last log lines

        # Docker keeps restarting the same container; the reconciler neither recreates it nor alerts again.
        [container] = h.containers("acme")
        wait_until(lambda: api.texts("degraded"), timeout=10, what="the degraded alert")
        # Stopped by hand during the backoff: resync passes see it exited but leave it alone until the backoff ends.
        container.stop(timeout=1)
        for _ in range(4):
            time.sleep(0.5)
            container.reload()
            assert container.status == "exited"
        held = read_status(h.rt.engine, "acme")
        held_condition = held.condition("Degraded") if held else None
        assert held_condition is not None and "restarts withheld" in held_condition.message
        # Then one attempt: started again (and crashing again).
        wait_until(
            lambda: (container.reload(), container.status in ("running", "restarting"))[1],
            timeout=20,
            what="the restart after the backoff",
        )
        assert [c.id for c in h.containers("acme")] == [container.id]
        assert len(api.texts("degraded")) == 1, api.texts()
        assert api.messages[0]["chat_id"] == "4242"
        assert "acme" in api.texts("degraded")[0] and "died 3 times" in api.texts("degraded")[0]

        # The fix: the crash setting removed from the desired state.
        h.import_yaml(_tenant())
        wait_until(lambda: _degraded(h) == "False", timeout=45, what="acme recovered")
        wait_until(lambda: api.texts("recovered"), timeout=10, what="the recovered alert")
        time.sleep(4)
        assert len(api.texts("recovered")) == 1 and len(api.texts("degraded")) == 1, api.texts()
        status = read_status(h.rt.engine, "acme")
        assert status is not None and status.phase == "Ready"
        assert h.stop_run() == 0
    text = log.read_text()
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    assert "is crash-looping" in text


def test_unhealthy_container_is_replaced(harness: Harness, tmp_path: Path) -> None:
    h = harness
    h.env.update(
        {
            "RECONCILER_HEALTHCHECK_COMMAND": "wget -q -O- http://127.0.0.1:{port}{health}",
            "RECONCILER_HEALTHCHECK_INTERVAL": "1",
            "RECONCILER_HEALTHCHECK_TIMEOUT": "1",
            "RECONCILER_HEALTHCHECK_RETRIES": "2",
            "RECONCILER_HEALTHCHECK_START_PERIOD": "0",
        }
    )
    h.rebuild()
    h.import_yaml(_tenant())
    assert h.apply().ok
    [container] = h.containers("acme")
    health = container.attrs["Config"]["Healthcheck"]
    assert health["Test"] == ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/health"]

    def health_status(c: object) -> str:
        c.reload()  # type: ignore[attr-defined]
        return str(c.attrs["State"].get("Health", {}).get("Status"))  # type: ignore[attr-defined]

    wait_until(lambda: health_status(container) == "healthy", timeout=20, what="healthy")
    log = tmp_path / "run.log"
    h.start_run(log_path=log)
    time.sleep(1)
    container.exec_run(["rm", "/www/health"])  # /health now answers 404

    def replaced() -> bool:
        found = h.containers("acme")
        return len(found) == 1 and found[0].id != container.id and health_status(found[0]) == "healthy"

    wait_until(replaced, timeout=40, what="the unhealthy container replaced by a healthy one")
    assert h.stop_run() == 0
    assert "Docker health check reports unhealthy" in log.read_text()

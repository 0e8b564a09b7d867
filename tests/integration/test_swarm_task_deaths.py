"""Task deaths on the Swarm engine (issue 13): a service whose container keeps exiting non-zero is seen dying from the
manager's task list, degrades its tenant with the reason and last log lines and one alert, is held back while its
backoff runs, and recovers with one alert once the operator fixes it, as under the Docker engine
(tests/integration/test_crashloop.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from desired_state.status import read_status
from tests.integration.harness import Harness
from tests.integration.runs import bot_api
from tests.integration.swarm import SwarmLab, wait_until
from tests.integration.swarm_rig import running_tasks, service_specs, swarm_harness

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

TOKEN = "123456:swarm-crash-loop-token"


def _tenant(crash: bool) -> str:
    env = ', env: {ERP_CRASH_AFTER: "2"}' if crash else ""
    return (
        "catalog:\n"
        "  a: {image: erp/demo-svc:1, port: 8080, health: /health, memory: 32M, cpus: 0.1}\n"
        "tenants:\n"
        "  - name: acme\n"
        "    domain: acme.erp.test\n"
        "    services:\n"
        f"      a: {{replicas: 1{env}}}\n"
    )


def _degraded(h: Harness) -> str | None:
    status = read_status(h.rt.engine, "acme")
    condition = status.condition("Degraded") if status else None
    return condition.status if condition else None


def test_a_crash_looping_service_degrades_is_held_back_and_recovers(
    swarm_lab: SwarmLab, owner_id: str, postgres_url: str, tmp_path: Path
) -> None:
    service = f"{owner_id}-acme-a"

    def replicas() -> int:
        return int(service_specs(swarm_lab, owner_id)[service]["Spec"]["Mode"]["Replicated"]["Replicas"])

    log = tmp_path / "run.log"
    with bot_api(TOKEN) as api, swarm_harness(swarm_lab, owner_id, postgres_url) as h:
        h.env.update(
            {
                "RECONCILER_TELEGRAM_TOKEN": TOKEN,
                "RECONCILER_TELEGRAM_CHAT_ID": "4242",
                "RECONCILER_TELEGRAM_BASE_URL": api.base_url,
                "RECONCILER_CRASHLOOP_DEATHS": "3",
                "RECONCILER_CRASHLOOP_WINDOW": "90",
                "RECONCILER_CRASHLOOP_BACKOFF_INITIAL": "60",
                # The first pass waits this long for a task that keeps dying, then fails and is retried.
                "RECONCILER_READY_TIMEOUT": "15",
                "RECONCILER_SWARM_TASK_POLL": "1",
            }
        )
        h.import_yaml(_tenant(crash=True))
        h.start_run(log_path=log)

        # Swarm restarts the task every ~7 s (2 s of life, 5 s restart delay); the watcher counts each death.
        wait_until(lambda: _degraded(h) == "True", 150, "acme Degraded by its dying tasks")
        status = read_status(h.rt.engine, "acme")
        assert status is not None and status.phase == "Degraded"
        condition = status.condition("Degraded")
        assert condition is not None and condition.reason == "CrashLoop", condition
        assert "died 3 times in 90s" in condition.message and "exited with code 1" in condition.message
        assert "crashing after 2s as asked" in condition.message  # the task's last log lines
        wait_until(lambda: bool(api.texts("degraded")), 20, "the degraded alert")

        # Held back: a service scaled by hand is not updated back while the backoff runs (resyncs every 2 s and the
        # deaths' own nudges all plan the update and withhold it).
        swarm_lab.docker("service", "scale", "--detach", f"{service}=2")
        for _ in range(6):
            time.sleep(1)
            assert replicas() == 2
        held = read_status(h.rt.engine, "acme")
        held_condition = held.condition("Degraded") if held else None
        assert held_condition is not None and "restarts withheld" in held_condition.message, held_condition

        # The fix is a new spec: applied at once, the tenant recovers with one alert.
        h.import_yaml(_tenant(crash=False))
        wait_until(lambda: _degraded(h) == "False", 90, "acme recovered")
        wait_until(
            lambda: replicas() == 1 and len(running_tasks(swarm_lab, service)) == 1, 90, "the fixed service at 1 task"
        )
        wait_until(lambda: bool(api.texts("recovered")), 20, "the recovered alert")
        assert len(api.texts("degraded")) == 1, api.texts()
        assert h.stop_run() == 0
    text = log.read_text()
    assert "is crash-looping" in text and "of service a died: exited with code 1" in text
    assert TOKEN.split(":")[1] not in text

"""Issue 6 acceptance: backups, restores, migrations before upgrades, pins and rollbacks.

Real Docker (demo images), a real PostgreSQL database per test and, for the upgrades, the session's real Traefik
with continuous load through it. Volumes are read and written through busybox helper containers, as the
reconciler itself does, so nothing here assumes where Docker keeps volume data on the host.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from desired_state.backups import list_backups, set_policy
from desired_state.operation_requests import create_request, get_request
from desired_state.operations import list_operations
from desired_state.pins import read_pins
from reconciler.runtime.operations.backup_schedule import BackupSchedule
from reconciler.runtime.operations.requests import process_requests
from reconciler.runtime.operations.tenant_ops import TenantOps
from reconciler.runtime.service.scheduler import Scheduler
from tests.integration.harness import Harness, wait_until

pytestmark = pytest.mark.integration

BUSYBOX = "erp/busybox:local"
CATALOG = """
catalog:
  a: {image: "erp/demo-svc:1", memory: 32M, cpus: 0.25, public: true, migrate: ["/bin/erp-migrate"]}
"""


def tenant_yaml(h: Harness, replicas: int = 1, image: str | None = None) -> str:
    override = f", image: {json.dumps(image)}" if image else ""
    services = f"    services:\n      a: {{replicas: {replicas}{override}}}\n"
    return CATALOG + f"tenants:\n  - name: acme\n    domain: {domain(h)}\n" + services


def domain(h: Harness) -> str:
    # Unique per test: every test routes through the same session Traefik.
    return f"acme.{h.owner}.erp.test"


def ops(h: Harness) -> TenantOps:
    assert h.rt.operations is not None
    return h.rt.operations


def in_volume(h: Harness, script: str, *, read_only: bool = False) -> str:
    """Run a shell script in a busybox container with the tenant's data volume at /data; its output."""
    output = h.docker_client.containers.run(
        BUSYBOX,
        ["sh", "-c", script],
        volumes={f"{h.owner}-acme-data": {"bind": "/data", "mode": "ro" if read_only else "rw"}},
        labels={"tenant-reconciler.owner": h.owner},
        network_mode="none",
        remove=True,
    )
    return output.decode() if isinstance(output, bytes) else str(output)


def checksums(h: Harness) -> dict[str, str]:
    """path -> sha256 of every file in the tenant's volume (symlinks and empty directories listed too)."""
    listing = in_volume(
        h,
        "cd /data && find . -type f | sort | xargs -r sha256sum; "
        'find . -type l | sort | while read l; do echo "link $(readlink "$l") $l"; done; '
        "find . -type d -empty | sort | sed 's/^/emptydir - /'",
        read_only=True,
    )
    result = {}
    for line in listing.splitlines():
        digest, _, path = line.rpartition(" ")
        result[path] = digest.strip()
    return result


def set_image(h: Harness, image: str) -> None:
    h.execute_sql(
        "UPDATE tenant_services SET image = :image WHERE service = 'a' "
        "AND tenant_id = (SELECT id FROM tenants WHERE name = 'acme')",
        image=image,
    )
    h.execute_sql("UPDATE tenants SET generation = generation + 1 WHERE name = 'acme'")


def versions_running(h: Harness) -> list[str]:
    return sorted(c.image.tags[0] for c in h.running("acme"))


class Load:
    """Requests through Traefik in a loop on a thread, counting answers by version and every failure."""

    def __init__(self, h: Harness, traefik: Any) -> None:
        self.url, self.host = traefik.web_url, domain(h)
        self.ok = 0
        self.failed: list[str] = []
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def get(self) -> httpx.Response:
        return httpx.get(self.url, headers={"Host": self.host}, trust_env=False, timeout=5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, trust_env=False, timeout=5.0) as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/", headers={"Host": self.host})
                except httpx.HTTPError as exc:
                    self.failed.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code == 200:
                    self.ok += 1
                    fields = dict(p.split("=", 1) for p in response.text.split() if "=" in p)
                    self.versions[fields.get("version", "?")] += 1
                else:
                    self.failed.append(f"HTTP {response.status_code}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


class FakeTelegram:
    """A local endpoint speaking the two Bot API methods the alerts use (getMe, sendMessage)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        messages = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    fields = json.loads(body or "{}")
                else:
                    fields = {k: v[0] for k, v in parse_qs(body).items()}
                method = self.path.rsplit("/", 1)[-1]
                if method == "sendMessage":
                    messages.append(str(fields.get("text", "")))
                    result: dict[str, Any] = {
                        "message_id": len(messages),
                        "date": int(time.time()),
                        "chat": {"id": 1, "type": "private"},
                        "text": fields.get("text", ""),
                    }
                else:
                    result = {"id": 1, "is_bot": True, "first_name": "ops", "username": "ops_bot"}
                payload = json.dumps({"ok": True, "result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/bot"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    yield fake
    fake.close()


def make_harness(owner_id: str, postgres_url: str, docker_client: Any, tmp_path: Path, **settings: str) -> Harness:
    return Harness.create(owner_id, postgres_url, docker_client, backup_dir=str(tmp_path / "backups"), **settings)


@pytest.fixture
def ops_harness(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> Iterator[Harness]:
    # Schedules of a few seconds: below the production bound of 5 minutes, allowed through the setting.
    h = make_harness(owner_id, postgres_url, docker_client, tmp_path, backup_min_free_mib="1", backup_min_interval="1")
    yield h
    h.stop_run()
    h.rt.engine.dispose()


@pytest.fixture
def routed_harness(
    owner_id: str,
    docker_client: Any,
    demo_images: Any,
    postgres_url: str,
    tmp_path: Path,
    traefik: Any,
    telegram: FakeTelegram,
) -> Iterator[Harness]:
    h = make_harness(
        owner_id,
        postgres_url,
        docker_client,
        tmp_path,
        backup_min_free_mib="1",
        traefik_dynamic_dir=str(traefik.dynamic_dir),
        traefik_api_url=traefik.api_url,
        telegram_token="123:operations-test",
        telegram_chat_id="42",
        telegram_base_url=telegram.base_url,
    )
    h.rt.alerts.start()
    yield h
    h.rt.alerts.stop()
    h.stop_run()
    h.rt.engine.dispose()


# ------------------------------------------------------------------------------------------------ backup & restore


def test_backup_then_restore_is_byte_identical(ops_harness: Harness) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    in_volume(
        h,
        "mkdir -p /data/docs/deep /data/empty && echo invoice-1 > /data/docs/a.txt && "
        "head -c 300000 /dev/urandom > /data/docs/deep/blob.bin && echo secret > /data/.hidden && "
        "ln -s docs/a.txt /data/link && chmod 600 /data/.hidden",
    )
    original = checksums(h)
    assert len(original) == 5

    made = h.cli("backup", "acme")
    assert made.returncode == 0, made.stderr
    (backup,) = list_backups(h.rt.engine, "acme")
    assert backup.status == "succeeded" and backup.trigger == "manual" and backup.file_name is not None
    archive = Path(h.settings().backup_dir or "") / backup.file_name
    assert archive.stat().st_size == backup.size_bytes
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == backup.sha256
    assert backup.duration_seconds is not None and backup.duration_seconds > 0
    assert f"backup {backup.id}" in made.stdout

    names_before = sorted(c.name for c in h.running("acme"))
    in_volume(
        h, "rm -rf /data/docs/deep && echo tampered > /data/docs/a.txt && echo new > /data/extra && rm /data/link"
    )
    assert checksums(h) != original

    restored = h.cli("restore", "acme", str(backup.id))
    assert restored.returncode == 0, restored.stderr
    assert checksums(h) == original
    assert in_volume(h, "stat -c %a /data/.hidden", read_only=True).strip() == "600"
    # The same containers serve again (they were stopped, not replaced) and nothing is held any more.
    assert sorted(c.name for c in h.running("acme")) == names_before
    kinds = [(o.kind, o.status) for o in list_operations(h.rt.engine, "acme") if o.kind in ("backup", "restore")]
    assert kinds == [("backup", "succeeded"), ("restore", "succeeded")]


def test_a_corrupted_archive_is_refused_and_nothing_is_touched(ops_harness: Harness) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    in_volume(h, "echo v1 > /data/state")
    record = ops(h).backup("acme")
    assert record.file_name is not None
    archive = Path(h.settings().backup_dir or "") / record.file_name
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    in_volume(h, "echo v2 > /data/state")
    started = {c.name: c.attrs["State"]["StartedAt"] for c in h.running("acme")}

    refused = h.cli("restore", "acme", str(record.id))
    assert refused.returncode == 1
    assert "corrupted" in refused.stderr and "nothing was restored" in refused.stderr
    assert in_volume(h, "cat /data/state", read_only=True).strip() == "v2"
    # Not even stopped: same containers, same start time.
    assert {c.name: c.attrs["State"]["StartedAt"] for c in h.running("acme")} == started
    restore = next(o for o in list_operations(h.rt.engine, "acme") if o.kind == "restore")
    assert restore.status == "failed" and "corrupted" in (restore.error or "")


def test_backup_refused_below_the_free_space_threshold(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> None:
    h = make_harness(owner_id, postgres_url, docker_client, tmp_path, backup_min_free_mib=str(1024**3))
    try:
        h.import_yaml(tenant_yaml(h))
        assert h.apply().ok
        refused = h.cli("backup", "acme")
        assert refused.returncode == 1
        assert "below the threshold" in refused.stderr and "RECONCILER_BACKUP_MIN_FREE_MIB" in refused.stderr
        assert "alert" in refused.stderr.lower()  # no bot configured: the alert is logged
        (row,) = list_backups(h.rt.engine, "acme")
        assert row.status == "failed" and "below the threshold" in (row.error or "")
        assert not any((tmp_path / "backups").rglob("*.tar.gz"))
        # In-process: the same refusal is counted in the metrics.
        with pytest.raises(Exception, match="below the threshold"):
            ops(h).backup("acme")
        exposition = h.rt.metrics.exposition().decode()
        assert 'reconciler_backups_total{result="refused",trigger="manual"} 1.0' in exposition
    finally:
        h.rt.engine.dispose()


def test_requests_from_the_ui_are_carried_out_and_answered(ops_harness: Harness) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    in_volume(h, "echo before > /data/state")
    backup_request = create_request(h.rt.engine, "acme", "backup")
    assert process_requests(ops(h)) == 1
    done = get_request(h.rt.engine, backup_request)
    assert done is not None and done.status == "succeeded" and done.done_at is not None and done.picked_at is not None
    (backup,) = list_backups(h.rt.engine, "acme")
    assert backup.trigger == "request"

    in_volume(h, "echo after > /data/state")
    restore_request = create_request(h.rt.engine, "acme", "restore", backup_id=backup.id)
    bad_request = create_request(h.rt.engine, "acme", "restore")
    assert process_requests(ops(h)) == 2
    restored = get_request(h.rt.engine, restore_request)
    assert restored is not None and restored.status == "succeeded" and restored.operation_id is not None
    assert in_volume(h, "cat /data/state", read_only=True).strip() == "before"
    bad = get_request(h.rt.engine, bad_request)
    assert bad is not None and bad.status == "failed" and "backup_id" in (bad.error or "")
    assert process_requests(ops(h)) == 0
    wait_until(lambda: len(h.running("acme")) == 1, timeout=20, what="tenant running again")


def test_a_schedule_runs_and_retention_keeps_exactly_k(ops_harness: Harness) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    in_volume(h, "echo data > /data/state")
    set_policy(h.rt.engine, "acme", "*/2 * * * * *", keep=2)  # every 2 seconds (six fields: seconds first)
    scheduler = Scheduler()
    schedule = BackupSchedule(ops(h), scheduler)
    schedule.register()
    schedule.refresh()  # what the periodic policy refresh does
    scheduler.start(paused=False)
    try:
        wait_until(
            lambda: len([b for b in list_backups(h.rt.engine, "acme") if b.status in ("succeeded", "pruned")]) >= 4,
            timeout=30,
            what="four scheduled backups",
        )
    finally:
        scheduler.shutdown()
    time.sleep(1)  # a backup that was running at shutdown finishes (and prunes)
    backups = list_backups(h.rt.engine, "acme")
    assert {b.trigger for b in backups} == {"schedule"}
    succeeded = [b for b in backups if b.status == "succeeded"]
    assert len(succeeded) == 2
    assert all(b.status == "pruned" for b in backups if b not in succeeded and b.status != "failed")
    files = sorted(p.name for p in (Path(h.settings().backup_dir or "") / "acme").glob("*.tar.gz"))
    assert files == sorted(Path(b.file_name or "").name for b in succeeded)
    # The kept ones are the newest.
    assert max(b.id for b in succeeded) == max(b.id for b in backups if b.status != "failed")


# ------------------------------------------------------------------------------------------------ upgrades


def migrations_log(h: Harness) -> list[str]:
    return in_volume(h, "cat /data/migrations.log 2>/dev/null || true", read_only=True).splitlines()


def test_upgrade_migrates_once_and_serves_the_new_version_without_a_failed_request(
    routed_harness: Harness, traefik: Any, telegram: FakeTelegram
) -> None:
    h = routed_harness
    h.import_yaml(tenant_yaml(h, replicas=2))
    assert h.apply().ok
    load = Load(h, traefik)
    wait_until(lambda: load.get().status_code == 200, timeout=15, what="acme served through Traefik")
    assert migrations_log(h) == []  # a first deploy is not an upgrade

    set_image(h, "erp/demo-svc:2")
    with load:
        time.sleep(0.5)
        result = h.apply()
        time.sleep(0.5)
    assert result.ok, result.errors
    print(f"upgrade under load: {load.ok} ok, {len(load.failed)} failed, versions {dict(load.versions)}")
    assert load.failed == []
    assert load.versions["1"] > 0 and load.versions["2"] > 0
    assert versions_running(h) == ["erp/demo-svc:2", "erp/demo-svc:2"]
    assert migrations_log(h)[0].startswith("migrated to version 2") and len(migrations_log(h)) == 1

    history = list_operations(h.rt.engine, "acme")
    upgrade = next(o for o in history if o.kind == "upgrade")
    assert (upgrade.status, upgrade.from_image, upgrade.to_image) == ("succeeded", "erp/demo-svc:1", "erp/demo-svc:2")
    migrate = next(o for o in history if o.kind == "migrate")
    assert migrate.status == "succeeded" and "migrated to version 2" in (migrate.output or "")
    (backup,) = [b for b in list_backups(h.rt.engine, "acme") if b.trigger == "pre-upgrade"]
    assert upgrade.backup_id == backup.id and backup.status == "succeeded"
    assert any(o.kind == "deploy" and o.status == "succeeded" for o in history)

    # Exactly once: back to 1 (keeping the migrated data) and up to 2 again does not migrate again.
    rolled = h.cli("rollback", "acme")
    assert rolled.returncode == 0, rolled.stderr
    assert versions_running(h) == ["erp/demo-svc:1", "erp/demo-svc:1"]
    set_image(h, "erp/demo-svc:2")
    assert h.apply().ok
    assert versions_running(h) == ["erp/demo-svc:2", "erp/demo-svc:2"]
    assert len(migrations_log(h)) == 1
    assert [o.status for o in list_operations(h.rt.engine, "acme", kind="migrate")] == ["succeeded"]
    assert telegram.messages == []


def test_a_failing_migration_keeps_the_old_version_pins_and_alerts_once(
    routed_harness: Harness, traefik: Any, telegram: FakeTelegram
) -> None:
    h = routed_harness
    h.import_yaml(tenant_yaml(h, replicas=2))
    assert h.apply().ok
    in_volume(h, "touch /data/.fail-migration")
    load = Load(h, traefik)
    wait_until(lambda: load.get().status_code == 200, timeout=15, what="acme served through Traefik")
    old_names = sorted(c.name for c in h.running("acme"))

    set_image(h, "erp/demo-svc:2")
    with load:
        time.sleep(0.3)
        first = h.apply()
        second = h.apply()  # what the loop's retry would do
        third = h.apply()
        time.sleep(0.3)
    assert "acme" in first.errors and "migration" in first.errors["acme"]
    assert second.ok and third.ok  # pinned: nothing left to try
    assert load.failed == [] and set(load.versions) == {"1"}
    assert sorted(c.name for c in h.running("acme")) == old_names
    assert versions_running(h) == ["erp/demo-svc:1", "erp/demo-svc:1"]

    (pin,) = read_pins(h.rt.engine, "acme")
    assert (pin.service, pin.pinned_image, pin.failed_image) == ("a", "erp/demo-svc:1", "erp/demo-svc:2")
    assert "exited with 1" in pin.reason and "erp-migrate" in pin.reason
    refused = [r for r in third.plan.refused if r.policy == "pinned"]
    assert len(refused) == 2
    status = json.loads(h.cli("status", "--json").stdout)[0]
    assert status["phase"] == "Degraded"
    assert any(c["type"] == "Pinned" and c["status"] == "True" for c in status["conditions"])
    upgrade = next(o for o in list_operations(h.rt.engine, "acme") if o.kind == "upgrade")
    assert upgrade.status == "failed" and "exited with 1" in (upgrade.error or "")

    wait_until(lambda: telegram.messages, timeout=10, what="the alert")
    time.sleep(1)
    assert len(telegram.messages) == 1, telegram.messages
    assert "upgrade of a to erp/demo-svc:2 failed" in telegram.messages[0]

    # The operator fixes the data and rolls back: the desired image is the old one again, the pin is gone.
    rolled = h.cli("rollback", "acme")
    assert rolled.returncode == 0, rolled.stderr
    assert read_pins(h.rt.engine, "acme") == []
    assert h.apply().plan.empty


def test_rollback_with_restore_brings_back_the_pre_upgrade_data(ops_harness: Harness) -> None:
    h = ops_harness
    h.import_yaml(tenant_yaml(h))
    assert h.apply().ok
    in_volume(h, "echo version-1-data > /data/state")
    set_image(h, "erp/demo-svc:2")
    assert h.apply().ok
    in_volume(h, "echo version-2-data > /data/state")
    assert len(migrations_log(h)) == 1

    rolled = h.cli("rollback", "acme", "--restore")
    assert rolled.returncode == 0, rolled.stderr
    assert versions_running(h) == ["erp/demo-svc:1"]
    assert in_volume(h, "cat /data/state", read_only=True).strip() == "version-1-data"
    assert migrations_log(h) == []
    # The restore undid the migration: upgrading again runs it again.
    migrate_rows = list_operations(h.rt.engine, "acme", kind="migrate")
    assert [m.status for m in migrate_rows] == ["reverted"]
    set_image(h, "erp/demo-svc:2")
    assert h.apply().ok
    assert len(migrations_log(h)) == 1
    rollback = next(o for o in list_operations(h.rt.engine, "acme") if o.kind == "rollback")
    assert rollback.status == "succeeded" and rollback.to_image == "erp/demo-svc:1"


def test_an_unhealthy_new_version_is_removed_and_pinned(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> None:
    h = make_harness(owner_id, postgres_url, docker_client, tmp_path, backup_min_free_mib="1", ready_timeout="3")
    try:
        h.import_yaml(tenant_yaml(h))
        assert h.apply().ok
        old = [c.name for c in h.running("acme")]
        h.execute_sql(
            "UPDATE tenant_services SET image = 'erp/demo-svc:2', env = '{\"ERP_UNHEALTHY\": \"1\"}' "
            "WHERE tenant_id = (SELECT id FROM tenants WHERE name = 'acme')"
        )
        h.execute_sql("UPDATE tenants SET generation = generation + 1 WHERE name = 'acme'")
        result = h.apply()
        assert "acme" in result.errors
        assert [c.name for c in h.containers("acme")] == old  # the new container is gone, the old one serves
        (pin,) = read_pins(h.rt.engine, "acme")
        assert "did not become healthy" in pin.reason
        assert len(migrations_log(h)) == 1  # the migration ran before the health check failed
        assert h.apply().ok
    finally:
        h.rt.engine.dispose()


def test_reconciler_run_answers_requests_and_runs_schedules(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path
) -> None:
    h = make_harness(
        owner_id,
        postgres_url,
        docker_client,
        tmp_path,
        backup_min_free_mib="1",
        operation_poll_interval="0.5",
        backup_policy_refresh="1",
        backup_min_interval="1",
    )
    try:
        h.import_yaml(tenant_yaml(h))
        assert h.apply().ok
        request_id = create_request(h.rt.engine, "acme", "backup")
        set_policy(h.rt.engine, "acme", "*/3 * * * * *", keep=1)
        h.start_run(log_path=tmp_path / "run.log")
        done = wait_until(
            lambda: (
                (r := get_request(h.rt.engine, request_id)) is not None
                and r.status != "pending"
                and r.status != "running"
                and r
            ),
            timeout=40,
            what="the backup request answered by reconciler run",
        )
        assert done.status == "succeeded", (done.error, (tmp_path / "run.log").read_text()[-3000:])
        wait_until(
            lambda: any(
                b.trigger == "schedule" and b.status in ("succeeded", "pruned")
                for b in list_backups(h.rt.engine, "acme")
            ),
            timeout=30,
            what="a scheduled backup",
        )
        assert h.stop_run() == 0
        assert len([b for b in list_backups(h.rt.engine, "acme") if b.status == "succeeded"]) == 1  # keep 1
    finally:
        h.stop_run()
        h.rt.engine.dispose()

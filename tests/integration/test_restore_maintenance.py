"""Issue 11: during a restore the tenant's routes answer 503 with ``Retry-After``, never 502; after it, 200.

Real Docker, PostgreSQL and the session's Traefik. A client loops requests through Traefik while
``TenantOps.restore`` runs (slowed by a volume of incompressible data, so the restore takes a while); every
answer is recorded with its status and ``Retry-After``. The maintenance answer is a small busybox container on the
tenant's network (``runtime.operations.maintenance``); it is gone after the restore.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.harness import Harness

pytestmark = pytest.mark.integration

BUSYBOX = "erp/busybox:local"
CATALOG = """
catalog:
  a: {image: "erp/demo-svc:1", memory: 32M, cpus: 0.25, public: true}
"""


@pytest.fixture
def routed(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, tmp_path: Path, traefik: Any
) -> Iterator[Harness]:
    h = Harness.create(
        owner_id,
        postgres_url,
        docker_client,
        backup_dir=str(tmp_path / "backups"),
        backup_min_free_mib="1",
        traefik_dynamic_dir=str(traefik.dynamic_dir),
        traefik_api_url=traefik.api_url,
    )
    try:
        yield h
    finally:
        for path in Path(traefik.dynamic_dir).glob(f"{owner_id}-*.yml"):
            path.unlink(missing_ok=True)
        h.rt.engine.dispose()


class Answers:
    """Requests through Traefik in a thread: (status, Retry-After) of every answer, errors by type."""

    def __init__(self, web_url: str, host: str) -> None:
        self.web_url, self.host = web_url, host
        self.seen: Counter[tuple[int, str | None]] = Counter()
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.web_url, trust_env=False, timeout=5) as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/", headers={"Host": self.host})
                except httpx.HTTPError as exc:
                    self.errors[type(exc).__name__] += 1
                    continue
                self.seen[(response.status_code, response.headers.get("retry-after"))] += 1
                time.sleep(0.01)

    def __enter__(self) -> Answers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_a_restore_answers_503_with_retry_after_never_502_then_200(
    routed: Harness, traefik: Any, docker_client: Any
) -> None:
    h = routed
    host = f"acme.{h.owner}.erp.test"
    h.import_yaml(CATALOG + f"tenants:\n  - name: acme\n    domain: {host}\n    services:\n      a: {{replicas: 2}}\n")
    assert h.apply().ok
    docker_client.containers.run(
        BUSYBOX,
        ["sh", "-c", "head -c 60000000 /dev/urandom > /data/blob"],  # slows the archive down to a few seconds
        volumes={f"{h.owner}-acme-data": {"bind": "/data", "mode": "rw"}},
        labels={"tenant-reconciler.owner": h.owner},
        network_mode="none",
        remove=True,
    )
    ops = h.rt.operations
    assert ops is not None
    backup = ops.backup("acme")

    with Answers(traefik.web_url, host) as answers:
        time.sleep(0.5)
        started = time.monotonic()
        restored, after = ops.restore("acme", backup.id)
        took = time.monotonic() - started
        time.sleep(0.5)
    print(f"restore in {took:.1f}s under load: {dict(answers.seen)}, errors {dict(answers.errors)}")
    assert after is not None and after.ok, after.errors if after else None
    assert restored.stopped  # the containers really were stopped
    assert not answers.errors
    statuses = {status for status, _ in answers.seen}
    assert statuses == {200, 503}, answers.seen  # never 502 (nor 404 for a missing route)
    assert {retry for status, retry in answers.seen if status == 503} == {"30"}
    assert answers.seen[(200, None)] > 0

    with httpx.Client(base_url=traefik.web_url, trust_env=False, timeout=5) as client:
        final = client.get("/", headers={"Host": host})
    assert final.status_code == 200 and "tenant=acme" in final.text
    leftovers = docker_client.containers.list(all=True, filters={"name": f"{h.owner}-acme-maintenance"})
    assert leftovers == []
    assert h.apply().plan.empty

"""The HTTP API against a real PostgreSQL and the real Docker engine: tenant CRUD, ETags and 409, 422 messages equal
to the loader's, roles, the audit log, operation requests, and an API edit indistinguishable from an SQL edit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from desired_state.access import digest, list_audit
from desired_state.load import load_desired_state
from desired_state.tables import Tenant, TenantService
from desired_state.yaml_io import import_yaml
from reconciler.core.render_plan import render_json
from reconciler.runtime.wiring import build_runtime
from tests.integration.api_support import CATALOG, Api, api_server
from tests.integration.harness import wait_until

pytestmark = pytest.mark.integration

ACME = {"name": "acme", "domain": "acme.erp.test", "services": {"a": {"replicas": 1}}}


@pytest.fixture
def api(postgres_url: str, owner_id: str, docker_client: Any) -> Iterator[Api]:
    with api_server(postgres_url, owner_id) as served:
        import_yaml(served.engine, CATALOG)
        yield served


def _insert_raw(engine: Engine, name: str, services: dict[str, dict[str, Any]], domain: str | None = None) -> None:
    """What the web UI does: rows as given, no validation."""
    with engine.begin() as connection:
        tenant_id = connection.execute(
            insert(Tenant).values(name=name, domain=domain or f"{name}.erp.test", state="running", generation=1)
        ).inserted_primary_key[0]
        for service, columns in services.items():
            values = dict(columns)
            if "env" in values:
                values["env"] = values["env"]
            connection.execute(insert(TenantService).values(tenant_id=tenant_id, service=service, **values))


def test_create_read_patch_replace_delete_with_etags(api: Api) -> None:
    with api.client("operator") as http:
        created = http.post("/api/v1/tenants", json=ACME)
        assert created.status_code == 201, created.text
        assert created.headers["ETag"] == '"1"'
        assert created.json()["tenant"]["generation"] == 1

        read = http.get("/api/v1/tenants/acme")
        assert read.status_code == 200 and read.headers["ETag"] == '"1"'
        assert read.json()["document"]["services"]["a"]["replicas"] == 1

        patched = http.patch(
            "/api/v1/tenants/acme", json={"services": {"a": {"replicas": 2}}}, headers={"If-Match": '"1"'}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["tenant"]["generation"] == 2 and patched.json()["changed"] is True

        # A second editor who read generation 1 is refused, and told the current one.
        stale = http.put("/api/v1/tenants/acme", json={**ACME, "state": "stopped"}, headers={"If-Match": '"1"'})
        assert stale.status_code == 409, stale.text
        assert stale.headers["ETag"] == '"2"' and "generation 2, not 1" in stale.json()["message"]

        # The same content again changes nothing, and bumps nothing.
        same = http.patch("/api/v1/tenants/acme", json={"services": {"a": {"replicas": 2}}})
        assert same.json()["changed"] is False and same.json()["tenant"]["generation"] == 2

        replaced = http.put("/api/v1/tenants/acme", json={**ACME, "state": "stopped"}, headers={"If-Match": '"2"'})
        assert replaced.status_code == 200 and replaced.json()["tenant"]["generation"] == 3
        assert http.post("/api/v1/tenants", json=ACME).status_code == 409

        listed = http.get("/api/v1/tenants", params={"q": "acm"}).json()
        assert [(t["name"], t["state"], t["generation"]) for t in listed] == [("acme", "stopped", 3)]

        assert http.delete("/api/v1/tenants/acme", headers={"If-Match": '"2"'}).status_code == 409
        assert http.delete("/api/v1/tenants/acme", headers={"If-Match": '"3"'}).status_code == 200
        assert http.get("/api/v1/tenants/acme").status_code == 404
    assert "acme" not in load_desired_state(api.engine).known


BAD_TENANTS = [
    ("replicas", {"a": {"replicas": -1}}, {"a": {"replicas": -1}}),
    ("unknown service", {"zz": {"replicas": 1}}, {"zz": {"replicas": 1}}),
    ("memory", {"a": {"memory": "lots"}}, {"a": {"memory": "lots"}}),
    ("env name", {"a": {"env": {"1BAD": "hunter2-secret"}}}, {"a": {"env": {"1BAD": "hunter2-secret"}}}),
    ("image", {"a": {"image": "Not An Image"}}, {"a": {"image": "Not An Image"}}),
]


@pytest.mark.parametrize(("what", "body_services", "row_services"), BAD_TENANTS, ids=[b[0] for b in BAD_TENANTS])
def test_a_rejected_write_says_what_the_loader_says(
    api: Api, what: str, body_services: dict[str, Any], row_services: dict[str, Any]
) -> None:
    name = "bad-" + what.replace(" ", "-")
    with api.client("operator") as http:
        answer = http.post(
            "/api/v1/tenants", json={"name": name, "domain": f"{name}.erp.test", "services": body_services}
        )
    assert answer.status_code == 422, answer.text
    assert "hunter2" not in answer.text
    assert load_desired_state(api.engine).known == frozenset()  # nothing was written

    # The same tenant written by SQL, as the web UI would: the loader's error is word for word the API's.
    _insert_raw(api.engine, name, row_services)
    loaded = load_desired_state(api.engine, limits=api.settings.input_limits()).errors[name]
    problem = answer.json()["problems"][0]
    assert problem["error"] == str(loaded)
    assert (problem["tenant"], problem["field"], problem["message"]) == (loaded.tenant, loaded.field, loaded.message)
    assert answer.json()["message"] == str(loaded)


def test_roles_and_tokens(api: Api) -> None:
    with api.client(None) as anonymous:
        assert anonymous.get("/api/v1/tenants").status_code == 401
        bogus = anonymous.get("/api/v1/tenants", headers={"Authorization": "Bearer rct_nope"})
        assert bogus.status_code == 401
    with api.client("viewer") as viewer:
        assert viewer.get("/api/v1/tenants").status_code == 200
        refused = viewer.post("/api/v1/tenants", json=ACME)
        assert refused.status_code == 403 and "needs operator" in refused.json()["message"]
        assert viewer.post("/api/v1/tenants/acme/requests", json={"kind": "backup"}).status_code == 403
    entry = {"name": "c", "image": "erp/demo-svc:2", "memory": "32M"}
    with api.client("operator") as operator:
        assert operator.put("/api/v1/catalog/c", json=entry).status_code == 403
        assert operator.get("/api/v1/tokens").status_code == 403
    with api.client("admin") as admin:
        assert admin.put("/api/v1/catalog/c", json=entry).status_code == 200
        assert [c["name"] for c in admin.get("/api/v1/catalog").json()] == ["a", "b", "c"]
        assert admin.delete("/api/v1/tokens/viewer").status_code == 200
    with api.client("viewer") as revoked:
        assert revoked.get("/api/v1/tenants").status_code == 401


def test_every_write_is_audited_with_digests(api: Api) -> None:
    with api.client("operator") as http:
        http.post("/api/v1/tenants", json=ACME)
        before = http.get("/api/v1/tenants/acme").json()["document"]
        http.patch("/api/v1/tenants/acme", json={"services": {"a": {"replicas": 3}}})
        asked = http.post("/api/v1/tenants/acme/requests", json={"kind": "backup"})
        assert asked.status_code == 201 and asked.json()["status"] == "pending"
        request_id = asked.json()["id"]
        # A restore without its backup is refused in the documented 422 body, naming the field; nothing is written.
        no_backup = http.post("/api/v1/tenants/acme/requests", json={"kind": "restore"})
        assert no_backup.status_code == 422 and no_backup.json()["problems"][0]["field"] == "backup_id", no_backup.text
        assert "a restore needs backup_id" in no_backup.json()["message"]
        assert http.get(f"/api/v1/requests/{request_id}").json()["kind"] == "backup"
        assert [r["id"] for r in http.get("/api/v1/tenants/acme/requests").json()] == [request_id]
    events = list(reversed(list_audit(api.engine, "tenant:acme")))
    assert [(e.actor, e.role, e.action) for e in events] == [
        ("operator", "operator", "tenant.create"),
        ("operator", "operator", "tenant.patch"),
        ("operator", "operator", "request.backup"),
    ]
    assert events[0].before_digest is None and events[0].after_digest is not None
    stored_before = {**before, "services": {"a": {"replicas": 1}}, "state": "running"}
    assert events[1].before_digest == digest(stored_before) == events[0].after_digest
    assert events[1].after_digest != events[1].before_digest
    with api.client("admin") as admin:
        newest = admin.get("/api/v1/audit", params={"target": "tenant:acme"}).json()[0]
        assert (newest["actor"], newest["action"]) == ("operator", "request.backup")


def _plan(api: Api) -> tuple[Any, str]:
    runtime = build_runtime(api.settings, schedule=False)
    try:
        desired = load_desired_state(api.engine, limits=api.settings.input_limits())
        plan = runtime.reconciler.compute(["acme"]).plan.for_tenant("acme")
        return desired.tenants["acme"], render_json(plan)
    finally:
        runtime.engine.dispose()


def test_an_api_edit_and_an_sql_edit_are_the_same_to_the_reconciler(api: Api) -> None:
    env = {"ERP_LOCALE": "fa_IR"}
    _insert_raw(api.engine, "acme", {"a": {"replicas": 1, "env": env}})
    # The web UI's edit, by SQL: replicas, memory and a route, generation bumped in the same transaction.
    with api.engine.begin() as connection:
        connection.execute(update(TenantService).values(replicas=2, memory="32m"))
        connection.execute(update(Tenant).values(generation=Tenant.generation + 1))
    by_sql = _plan(api)
    with api.engine.begin() as connection:
        connection.execute(update(TenantService).values(replicas=1, memory=None))
        connection.execute(update(Tenant).values(generation=Tenant.generation + 1))
    generation = api.engine.connect().execute(select(Tenant.generation)).scalar_one()

    with api.client("operator") as http:
        answer = http.patch(
            "/api/v1/tenants/acme",
            json={"services": {"a": {"replicas": 2, "memory": "32M"}}},
            headers={"If-Match": f'"{generation}"'},
        )
    assert answer.status_code == 200, answer.text
    by_api = _plan(api)
    assert by_api[0] == by_sql[0]
    assert json.loads(by_api[1]) == json.loads(by_sql[1])
    assert json.loads(by_api[1])["summary"]["create"] >= 2  # the network or volume and two containers


def test_preview_is_the_plan_the_edit_then_gets_and_writes_nothing(api: Api, demo_images: Any) -> None:
    with api.client("operator") as http:
        http.post("/api/v1/tenants", json=ACME)
        pending = http.get("/api/v1/tenants/acme/plan").json()
        assert pending["summary"]["create"] >= 2 and pending["lines"][0] == "tenant acme:"
        preview = http.post("/api/v1/tenants/acme/preview", json={"patch": {"services": {"a": {"replicas": 3}}}})
        assert preview.status_code == 200, preview.text
        assert http.get("/api/v1/tenants/acme").headers["ETag"] == '"1"'  # nothing written
        rejected = http.post("/api/v1/tenants/acme/preview", json={"patch": {"services": {"a": {"replicas": 99}}}})
        assert rejected.status_code == 422 and "services.a.replicas = 99" in rejected.json()["message"]
        http.patch("/api/v1/tenants/acme", json={"services": {"a": {"replicas": 3}}})
        assert http.get("/api/v1/tenants/acme/plan").json() == preview.json()

        # Once the tenant runs, nothing is pending; deleting it would remove its containers (never its volume), which
        # here are all this owner has: the preview shows the mass-delete guard refusing them, as the pass would.
        runtime = build_runtime(api.settings, schedule=False)
        try:
            assert runtime.reconciler.run_pass(["acme"]).ok
        finally:
            runtime.engine.dispose()
        assert http.get("/api/v1/tenants/acme/plan").json()["changes"] == []
        gone = http.post("/api/v1/tenants/acme/preview", json={"delete": True}).json()
        refused = gone["refused"]
        assert sum(line.startswith("- container") for line in refused) == 3 and gone["changes"] == []
        assert all("mass-delete" in line for line in refused) and not any(" volume " in line for line in refused)
        assert http.get("/api/v1/tenants/acme").status_code == 200  # still there


def test_a_write_that_changes_something_is_nudged_after_commit(
    postgres_url: str, owner_id: str, docker_client: Any, rabbitmq: Any
) -> None:
    import pika

    exchange, queue = f"{owner_id}.x", f"{owner_id}.nudges"
    with api_server(
        postgres_url, owner_id, rabbitmq_url=rabbitmq.url, rabbitmq_exchange=exchange, rabbitmq_queue=queue
    ) as api:
        import_yaml(api.engine, CATALOG)
        with api.client("operator") as http:
            created = http.post("/api/v1/tenants", json=ACME).json()
            unchanged = http.put("/api/v1/tenants/acme", json=ACME).json()
        assert created["nudged"] is True and unchanged["nudged"] is False and unchanged["changed"] is False
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
        try:
            channel = connection.channel()
            bodies = []
            while True:
                _method, _properties, body = channel.basic_get(queue, auto_ack=True)
                if body is None:
                    break
                bodies.append(json.loads(body))
            channel.queue_delete(queue)
            channel.queue_delete(f"{queue}.dead")
            channel.exchange_delete(exchange)
            channel.exchange_delete(f"{exchange}.dead")
        finally:
            connection.close()
    assert bodies == [{"tenant": "acme", "reason": "tenant.create", "requested_by": "api:operator"}]


def test_alerts_the_runtime_raises_are_listed(api: Api) -> None:
    runtime = build_runtime(api.settings, schedule=False)
    try:
        runtime.alerts.notify("⚠️ tenant acme degraded: replica a-0 restarted 3 times")
        runtime.alerts.notify("⚠️ tenant other: DNS conflict")
    finally:
        runtime.engine.dispose()
    with api.client("viewer") as http:
        mine = http.get("/api/v1/alerts", params={"tenant": "tenant acme"}).json()
        every = http.get("/api/v1/alerts").json()
    assert [(a["outcome"], a["text"]) for a in mine] == [
        ("logged", "⚠️ tenant acme degraded: replica a-0 restarted 3 times")
    ]
    assert [a["text"] for a in every] == ["⚠️ tenant other: DNS conflict", mine[0]["text"]]


def test_capacity_is_the_engines_host_and_the_running_tenants_limits(api: Api, docker_client: Any) -> None:
    _insert_raw(api.engine, "acme", {"a": {"replicas": 2}, "b": {"replicas": 1, "memory": "32M", "cpus": 0.2}})
    _insert_raw(api.engine, "idle", {"a": {"replicas": 3}})
    with api.engine.begin() as connection:
        connection.execute(update(Tenant).where(Tenant.name == "idle").values(state="stopped"))
    with api.client("viewer") as http:
        found = http.get("/api/v1/capacity").json()
    info = docker_client.info()
    assert (found["memory_total_bytes"], found["cpus_total"]) == (info["MemTotal"], info["NCPU"])
    # acme: a is 16M x 2 at 0.1 CPUs (catalog), b 32M x 1 at 0.2; the stopped tenant reserves nothing.
    assert found["memory_reserved_bytes"] == (2 * 16 + 32) * 2**20 and found["cpus_reserved"] == 0.4
    assert found["tenants_running"] == 1 and found["memory_used_bytes"] == 0


def test_logs_of_the_tenants_containers_tail_and_follow(api: Api, docker_client: Any, demo_images: Any) -> None:
    script = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.3; done"
    labels = {"tenant-reconciler.owner": api.settings.owner_id, "tenant-reconciler.tenant": "acme"}
    docker_client.containers.run(demo_images.busybox, ["sh", "-c", script], detach=True, labels=labels)
    # Another tenant's container of the same owner is never shown.
    other = {**labels, "tenant-reconciler.tenant": "other"}
    docker_client.containers.run(
        demo_images.busybox, ["sh", "-c", "echo secret-of-other; sleep 30"], detach=True, labels=other
    )
    _insert_raw(api.engine, "acme", {"a": {"replicas": 1}})
    with api.client("viewer") as http:
        wait_until(lambda: len(http.get("/api/v1/tenants/acme/logs").json()) >= 3, timeout=30, what="three lines")
        tail = http.get("/api/v1/tenants/acme/logs", params={"tail": 2}).json()
        assert len(tail) == 2 and all(line["text"].split(" ", 1)[1].startswith("line ") for line in tail)
        with http.stream(
            "GET", "/api/v1/tenants/acme/logs", params={"follow": "true", "tail": 1, "max_seconds": 4}
        ) as streamed:
            lines = [line for line in streamed.iter_lines() if line]
    numbers = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert len(numbers) >= 5 and numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert not any("secret-of-other" in line for line in lines)


def test_usage_over_time_comes_from_prometheus_when_configured(
    postgres_url: str, owner_id: str, docker_client: Any, prometheus: Any
) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from tests.integration.runs import free_port

    registry = CollectorRegistry()
    memory = Gauge("reconciler_tenant_memory_bytes", "test", ["tenant", "service"], registry=registry)
    cpu = Gauge("reconciler_tenant_cpu_cores", "test", ["tenant", "service"], registry=registry)
    memory.labels("acme", "a").set(50 * 2**20)
    cpu.labels("acme", "a").set(0.25)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    job = f"api-{owner_id}"
    prometheus.reload(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
        f'  - job_name: {job}\n    static_configs:\n      - targets: ["127.0.0.1:{port}"]\n'
    )
    try:
        with api_server(postgres_url, owner_id, prometheus_url=prometheus.url) as api:
            _insert_raw(api.engine, "acme", {"a": {"replicas": 1}})
            with api.client("viewer") as http:
                found = wait_until(
                    lambda: (answer := http.get("/api/v1/tenants/acme/usage").json())["series"] and answer,
                    timeout=60,
                    what="a series from Prometheus",
                )
        assert found["source"] == "prometheus"
        assert found["series"][-1]["memory_bytes"] == 50 * 2**20 and found["series"][-1]["cpu_cores"] == 0.25
    finally:
        prometheus.reload("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs: []\n")
        server.shutdown()

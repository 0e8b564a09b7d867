"""Issue 14: a move of a tenant's data (Swarm) asked through the API and the console. On the Docker engine it is
refused (409, nothing written); a bad node name is a 422 naming the field and the shortened value; with the Swarm
settings the request row is the one docs/schema.md's SQL writes; a move row answered by the real request pool shows
its outcome in the API and on the tenant page. Real PostgreSQL and Docker; executing a move on a swarm is the
``swarm`` tests' (test_swarm_*), not run here."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from desired_state.access import create_token, list_audit
from desired_state.placements import record_placements
from desired_state.yaml_io import import_yaml
from reconciler.runtime.operations.requests import process_requests
from reconciler.runtime.wiring import build_runtime
from tests.integration.api_support import CATALOG, PASSWORD, Api, api_server, console_login, csrf_of

pytestmark = pytest.mark.integration

TENANTS = "tenants:\n  - {name: acme, domain: acme.erp.test, state: stopped, services: {a: {}}}\n"
# docs/schema.md, "operation_requests": what the web UI inserts to move acme's data to node n2.
SQL_MOVE = (
    "INSERT INTO operation_requests (tenant, kind, node, requested_at, status, created_at, updated_at) "
    "VALUES ('acme', 'move', 'n2', now(), 'pending', now(), now())"
)
# Every column but the id and the times the writer takes from its clock.
COMPARED = "tenant, kind, backup_id, restore, node, priority, status, picked_at, done_at, error, operation_id"


def _serve(postgres_url: str, owner: str, **extra: Any) -> Iterator[Api]:
    with api_server(postgres_url, owner, **extra) as served:
        import_yaml(served.engine, CATALOG + TENANTS)
        create_token(served.engine, "olga", "operator", password=PASSWORD)
        yield served


@pytest.fixture
def api(postgres_url: str, owner_id: str, docker_client: Any) -> Iterator[Api]:
    """The API on the Docker engine (the default)."""
    yield from _serve(postgres_url, owner_id)


@pytest.fixture
def swarm_api(postgres_url: str, owner_id: str, docker_client: Any, tmp_path: Path) -> Iterator[Api]:
    """The API with a swarm's settings (two nodes with an engine each). No swarm is asked anything at request
    time: the nodes' addresses are never contacted by these tests."""
    nodes = "n1=tcp://127.0.0.1:9,n2=tcp://127.0.0.1:9"
    yield from _serve(postgres_url, owner_id, engine="swarm", swarm_node_hosts=nodes, backup_dir=str(tmp_path))


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        query = text(f"SELECT {COMPARED} FROM operation_requests ORDER BY id")
        return [dict(row._mapping) for row in connection.execute(query)]


def test_on_the_docker_engine_a_move_is_refused_and_nothing_is_written(api: Api) -> None:
    with api.client("operator") as http:
        refused = http.post("/api/v1/tenants/acme/requests", json={"kind": "move", "node": "n2"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["message"] == (
            "tenant 'acme': moving data needs RECONCILER_ENGINE=swarm; this reconciler runs tenants on the docker "
            "engine (one host: there is no other node to move to)"
        )
        # A bad name is told apart from a refusal: 422 naming the field and the shortened value.
        bad = http.post("/api/v1/tenants/acme/requests", json={"kind": "move", "node": "n2; rm -rf /" + "x" * 300})
        assert bad.status_code == 422, bad.text
        [problem] = bad.json()["problems"]
        assert problem["field"] == "body.node" and problem["value"].startswith("'n2; rm -rf /xxx")
        assert problem["value"].endswith("…") and len(problem["value"]) < 100
        assert "node must be a Swarm node's hostname" in problem["message"]
        missing = http.post("/api/v1/tenants/acme/requests", json={"kind": "move"})
        assert missing.status_code == 422 and missing.json()["problems"][0]["field"] == "node", missing.text
        assert "a move needs node" in missing.json()["message"]
        stray = http.post("/api/v1/tenants/acme/requests", json={"kind": "backup", "node": "n2"})
        assert stray.status_code == 422 and "node is for a move only" in stray.json()["message"], stray.text
        assert http.post("/api/v1/tenants/nobody/requests", json={"kind": "move", "node": "n2"}).status_code == 404
    with api.client("viewer") as http:
        assert http.post("/api/v1/tenants/acme/requests", json={"kind": "move", "node": "n2"}).status_code == 403
    assert _rows(api.engine) == []

    with console_login(api, "olga") as browser:
        page = browser.get("/tenants/acme")
        assert 'id="move-form"' not in page.text  # nothing to move to on one engine
        answer = browser.post("/tenants/acme/action", data={"csrf": csrf_of(page), "do": "move", "node": "n2"})
        assert answer.status_code == 409 and "moving data needs RECONCILER_ENGINE=swarm" in answer.text
        answer = browser.post("/tenants/acme/action", data={"csrf": csrf_of(page), "do": "move", "node": "n 2"})
        assert answer.status_code == 422 and "node = 'n 2': node must be" in html.unescape(answer.text)
    assert _rows(api.engine) == []


def test_a_move_row_the_run_answers_shows_its_outcome_in_the_api_and_the_console(api: Api) -> None:
    # The web UI's SQL; then the request pool of `reconciler run` (here on the Docker engine) answers it.
    with api.engine.begin() as connection:
        connection.execute(text(SQL_MOVE))
    runtime = build_runtime(api.settings, schedule=False)
    try:
        assert runtime.operations is not None
        assert process_requests(runtime.operations) == 1
    finally:
        runtime.engine.dispose()
    with api.client("viewer") as http:
        [answered] = http.get("/api/v1/tenants/acme/requests").json()
        [moved] = http.get("/api/v1/tenants/acme/operations").json()
    assert (answered["kind"], answered["node"], answered["status"]) == ("move", "n2", "failed")
    assert answered["error"].startswith("moving data needs RECONCILER_ENGINE=swarm"), answered["error"]
    assert (moved["kind"], moved["status"], moved["request_id"]) == ("move", "failed", answered["id"])
    with console_login(api, "olga") as browser:
        page = browser.get("/tenants/acme").text
    row = f'data-request="{answered["id"]}" data-kind="move" data-status="failed"'
    assert row in page and "<td>data move</td>" in page and '<td class="ltr">n2</td>' in page
    assert answered["error"] in html.unescape(page)


def test_with_swarm_settings_a_move_is_checked_then_written_as_the_sql_contract_writes_it(swarm_api: Api) -> None:
    api = swarm_api
    ask = "/api/v1/tenants/acme/requests"
    with api.client("operator") as http:
        unknown = http.post(ask, json={"kind": "move", "node": "n9"})
        assert unknown.status_code == 409, unknown.text
        assert "unknown node 'n9'" in unknown.json()["message"] and "are n1, n2" in unknown.json()["message"]
        unplaced = http.post(ask, json={"kind": "move", "node": "n2"})
        assert unplaced.status_code == 409 and "has no data node yet" in unplaced.json()["message"]
        record_placements(api.engine, [("acme", "n1")], {"acme": f"{api.settings.name_prefix}-acme-data"})
        same = http.post(ask, json={"kind": "move", "node": "n1"})
        assert same.status_code == 409 and "already on node n1" in same.json()["message"], same.text
        assert _rows(api.engine) == []

        created = http.post(ask, json={"kind": "move", "node": "n2"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["kind"], body["node"], body["status"], body["tenant"]) == ("move", "n2", "pending", "acme")
    with api.engine.begin() as connection:
        connection.execute(text(SQL_MOVE))
    through_api, through_sql = _rows(api.engine)
    assert through_api == through_sql
    with api.engine.connect() as connection:
        stamped = connection.execute(
            text("SELECT requested_at, created_at, updated_at FROM operation_requests WHERE id = :id"),
            {"id": body["id"]},
        ).one()
    assert None not in stamped
    [audited] = [a for a in list_audit(api.engine, "tenant:acme") if a.action == "request.move"]
    assert audited.detail == f"request {body['id']} to node n2" and audited.actor == "operator"

    with console_login(api, "olga") as browser:
        page = browser.get("/tenants/acme")
        assert 'id="move-form"' in page.text
        asked = browser.post("/tenants/acme/action", data={"csrf": csrf_of(page), "do": "move", "node": "n2"})
        assert asked.status_code == 303 and asked.headers["location"] == "/tenants/acme?notice=move"
        shown = browser.get(asked.headers["location"]).text
    assert "Data move requested." in shown
    assert shown.count('data-kind="move" data-status="pending"') == 3
    assert len(_rows(api.engine)) == 3 and _rows(api.engine)[2] == through_sql

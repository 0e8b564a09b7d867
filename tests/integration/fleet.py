"""A fleet of four tenants behind the session's Traefik and PowerDNS, for the "one plan for every layer" tests.

``layered_harness`` wires a ``Harness`` with routing (Traefik's file provider, files named after the test's owner
id) and DNS (one zone named after the owner id, created by the reconciler, deleted afterwards). The fleet: acme
runs a public service ``a`` with two replicas and a private ``b``; globex, initech and umbrella one public ``a``
each. ``site_answer`` asks Traefik's web entrypoint with the tenant's Host header; ``dns_answer`` asks PowerDNS's
DNS port with a real query. Used by test_mass_delete_layers.py and test_plan_layers.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx

from desired_state.status import read_status
from tests.integration.harness import Harness, wait_until
from tests.integration.traffic import body_fields

TENANTS = ("acme", "globex", "initech", "umbrella")
# A value that must never reach plan output, a status row or an error message.
SECRET = "s3cr3t-4f9d2b7e61c0"

CATALOG = """\
catalog:
  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.1, public: true}
  b: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1}
"""


def zone(h: Harness) -> str:
    return f"{h.owner}.test."


def domain(h: Harness, tenant: str) -> str:
    return f"{tenant}.{h.owner}.test"


def fleet_yaml(h: Harness) -> str:
    acme = f'      a: {{replicas: 2, env: {{DB_PASSWORD: "{SECRET}"}}}}\n      b: {{}}\n'
    services = {"acme": acme, "globex": "      a: {}\n", "initech": "      a: {}\n", "umbrella": "      a: {}\n"}
    tenants = "".join(f"  - name: {t}\n    domain: {domain(h, t)}\n    services:\n{services[t]}" for t in TENANTS)
    return f"{CATALOG}tenants:\n{tenants}"


def route_file(h: Harness, traefik: Any, tenant: str) -> Path:
    return Path(traefik.dynamic_dir) / f"{h.owner}-{tenant}.yml"


@contextmanager
def layered_harness(
    owner: str, postgres_url: str, docker_client: Any, traefik: Any, powerdns: Any, **settings: str
) -> Iterator[Harness]:
    h = Harness.create(
        owner,
        postgres_url,
        docker_client,
        traefik_dynamic_dir=str(traefik.dynamic_dir),
        traefik_api_url=traefik.api_url,
        powerdns_url=powerdns.api_url,
        powerdns_api_key=powerdns.api_key,
        powerdns_zones=json.dumps([f"{owner}.test."]),
        **settings,
    )
    try:
        yield h
    finally:
        h.stop_run()
        for path in Path(traefik.dynamic_dir).glob(f"{owner}-*.yml"):
            path.unlink(missing_ok=True)
        if powerdns.running():
            with pdns_api(powerdns) as client:
                client.delete(f"/zones/{owner}.test.")
        dns_stage = h.rt.reconciler.dns
        if dns_stage is not None:
            dns_stage.close()  # type: ignore[attr-defined]
        h.rt.engine.dispose()


def pdns_api(powerdns: Any) -> httpx.Client:
    """PowerDNS's HTTP API as a person would use it (edits by hand, cleanup)."""
    return httpx.Client(
        base_url=f"{powerdns.api_url}/api/v1/servers/localhost",
        headers={"X-API-Key": powerdns.api_key},
        trust_env=False,
        timeout=5,
    )


def dns_answer(powerdns: Any, name: str, type_: str = "A") -> tuple[str, list[str]]:
    """(rcode, sorted records of that type) as PowerDNS's DNS port answers a real query now."""
    query = dns.message.make_query(name, type_)
    response = dns.query.udp(query, powerdns.host, port=powerdns.dns_port, timeout=3)
    wanted = dns.rdatatype.from_text(type_)
    records = sorted(rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset)
    return dns.rcode.to_text(response.rcode()), records


def site_answer(traefik: Any, h: Harness, tenant: str) -> tuple[int, dict[str, str]]:
    """(HTTP status, fields of the demo service's answer) through Traefik's web entrypoint."""
    with httpx.Client(base_url=traefik.web_url, trust_env=False, timeout=5) as client:
        response = client.get("/", headers={"Host": domain(h, tenant)})
    return response.status_code, body_fields(response.text) if response.status_code == 200 else {}


def serving(traefik: Any, powerdns: Any, h: Harness) -> dict[str, str]:
    """What is wrong with each tenant's site (empty: every site answers through Traefik and in DNS)."""
    wrong: dict[str, str] = {}
    for tenant in TENANTS:
        code, fields = site_answer(traefik, h, tenant)
        record = dns_answer(powerdns, domain(h, tenant))
        if code != 200 or fields.get("tenant") != tenant:
            wrong[tenant] = f"HTTP {code} {fields}"
        elif record != ("NOERROR", ["127.0.0.1"]):
            wrong[tenant] = f"DNS {record}"
    return wrong


def assert_serving(traefik: Any, powerdns: Any, h: Harness, when: str) -> None:
    wrong = serving(traefik, powerdns, h)
    assert not wrong, f"{when}: sites not answering: {wrong}"


def converge_fleet(traefik: Any, powerdns: Any, h: Harness) -> None:
    """Import the fleet and apply until every site answers; statuses Ready."""
    h.import_yaml(fleet_yaml(h))
    result = h.apply()
    assert result.ok, (result.errors, result.plan.errors)
    wait_until(lambda: not serving(traefik, powerdns, h), timeout=20, what="every site answering")
    for tenant in TENANTS:
        status = read_status(h.rt.engine, tenant)
        assert status is not None and status.phase == "Ready", (tenant, status)

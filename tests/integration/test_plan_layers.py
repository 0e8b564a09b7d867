"""Issue 10 acceptance: ``reconciler plan`` shows every layer (routes and DNS records next to containers).

Against the session's Traefik and PowerDNS (``tests.integration.fleet``): the plan before the first apply lists
each tenant's route file with its routers and servers, and its records; after apply it is empty; a route file
deleted or edited by hand and a record deleted by hand (PATCH to the PowerDNS API) show as exactly those changes,
and apply heals them. ``plan --json`` carries route parts and DNS zones, and never an env value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.fleet import (
    SECRET,
    TENANTS,
    assert_serving,
    dns_answer,
    domain,
    fleet_yaml,
    layered_harness,
    pdns_api,
    route_file,
    zone,
)
from tests.integration.harness import Harness

pytestmark = pytest.mark.integration

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
EMPTY = "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 0 refused.\n"


@pytest.fixture
def fleet(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, traefik: Any, powerdns: Any
) -> Iterator[Harness]:
    with layered_harness(owner_id, postgres_url, docker_client, traefik, powerdns) as h:
        yield h


def sections(text: str) -> dict[str, list[str]]:
    """The plan text's lines by tenant (``tenant NAME:`` headers), stripped."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = re.fullmatch(r"tenant (\S+):", line)
        if header:
            current = found.setdefault(header.group(1), [])
        elif line.startswith("Plan:"):
            current = None
        elif current is not None:
            current.append(line.strip())
    return found


def changes(text: str) -> dict[str, list[str]]:
    """Only the change lines (``+ route NAME  [...]``) of each tenant, without reasons and parts."""
    kinds = ("network", "volume", "container", "route", "dns")
    pattern = re.compile(rf"^(\+|~|-|-/\+) ({'|'.join(kinds)}) ")
    return {t: [line for line in lines if pattern.match(line)] for t, lines in sections(text).items()}


def plan(h: Harness, *args: str) -> tuple[int, str]:
    out = h.cli("plan", *args)
    assert out.returncode in (EXIT_OK, EXIT_CHANGES), (out.returncode, out.stdout, out.stderr)
    assert SECRET not in out.stdout + out.stderr
    return out.returncode, out.stdout


def hand_delete_record(powerdns: Any, h: Harness, tenant: str) -> None:
    rrset = {"name": f"{domain(h, tenant)}.", "type": "A", "changetype": "DELETE"}
    with pdns_api(powerdns) as client:
        response = client.patch(f"/zones/{zone(h)}", json={"rrsets": [rrset]})
    assert response.status_code == 204, response.text


def test_plan_lists_routes_and_records_and_apply_heals_hand_edits(fleet: Harness, traefik: Any, powerdns: Any) -> None:
    h = fleet
    h.import_yaml(fleet_yaml(h))
    code, text = plan(h)
    assert code == EXIT_CHANGES, text
    by_tenant = sections(text)
    assert sorted(by_tenant) == sorted(TENANTS), text
    for tenant in TENANTS:
        lines, name = by_tenant[tenant], f"{h.owner}-{tenant}"
        assert f"+ route {name}.yml  [1 router]" in lines, (tenant, lines)
        assert f"+ router {name}.a (Host(`{domain(h, tenant)}`))" in lines, (tenant, lines)
        servers = [line for line in lines if line.startswith(f"+ server new container {name}-a-")]
        assert len(servers) == (2 if tenant == "acme" else 1), (tenant, lines)
        assert all(line.endswith(f"(in {name}.a)") for line in servers), servers
        assert f"+ dns {domain(h, tenant)}. A in {zone(h)}  [127.0.0.1 ttl=60]" in lines, (tenant, lines)
    # b is not public: it has containers but no router.
    assert not [line for line in by_tenant["acme"] if f"{h.owner}-acme.b " in line and "router" in line]

    out = h.cli("apply")
    assert out.returncode == EXIT_OK, (out.stdout, out.stderr)
    assert SECRET not in out.stdout + out.stderr
    assert plan(h) == (EXIT_OK, EMPTY)
    assert_serving(traefik, powerdns, h, "after the first apply")

    # A route file deleted by hand: only that tenant's route is planned.
    globex = route_file(h, traefik, "globex")
    written = globex.read_text()
    globex.unlink()
    code, text = plan(h)
    assert code == EXIT_CHANGES, text
    assert changes(text) == {"globex": [f"+ route {h.owner}-globex.yml  [1 router]"]}, text
    assert "# route file missing" in sections(text)["globex"], text

    # A route file edited by hand (same routes, different text).
    umbrella = route_file(h, traefik, "umbrella")
    umbrella_written = umbrella.read_text()
    umbrella.write_text(umbrella_written + "# tuned by hand\n")
    code, text = plan(h)
    assert code == EXIT_CHANGES, text
    assert changes(text)["umbrella"] == [f"~ route {h.owner}-umbrella.yml  [1 router]"], text
    assert "# route file edited by hand" in sections(text)["umbrella"], text

    # A record deleted by hand: its creation is planned; nothing else changed.
    hand_delete_record(powerdns, h, "initech")
    assert dns_answer(powerdns, domain(h, "initech")) == ("NXDOMAIN", [])
    code, text = plan(h)
    assert code == EXIT_CHANGES, text
    assert changes(text) == {
        "globex": [f"+ route {h.owner}-globex.yml  [1 router]"],
        "initech": [f"+ dns {domain(h, 'initech')}. A in {zone(h)}  [127.0.0.1 ttl=60]"],
        "umbrella": [f"~ route {h.owner}-umbrella.yml  [1 router]"],
    }, text

    out = h.cli("apply")
    assert out.returncode == EXIT_OK, (out.stdout, out.stderr)
    assert plan(h) == (EXIT_OK, EMPTY)
    assert globex.read_text() == written and umbrella.read_text() == umbrella_written
    assert dns_answer(powerdns, domain(h, "initech")) == ("NOERROR", ["127.0.0.1"])
    assert_serving(traefik, powerdns, h, "after apply healed the hand edits")


def test_plan_json_has_route_parts_and_dns_zones_and_never_an_env_value(fleet: Harness) -> None:
    h = fleet
    h.import_yaml(fleet_yaml(h))
    code, text = plan(h, "--json")
    assert code == EXIT_CHANGES
    data = json.loads(text)
    routes = {c["tenant"]: c for c in data["changes"] if c["kind"] == "route"}
    records = {c["tenant"]: c for c in data["changes"] if c["kind"] == "dns"}
    assert sorted(routes) == sorted(records) == sorted(TENANTS), data["changes"]
    for tenant in TENANTS:
        route, record, name = routes[tenant], records[tenant], f"{h.owner}-{tenant}"
        assert (route["action"], route["name"]) == ("+", f"{name}.yml"), route
        parts = {(p["action"], p["kind"], p["name"]) for p in route["parts"]}
        assert {("+", "router", f"{name}.a"), ("+", "service", f"{name}.a")} <= parts, route["parts"]
        servers = [p for p in route["parts"] if p["kind"] == "server"]
        assert len(servers) == (2 if tenant == "acme" else 1), route["parts"]
        assert (record["action"], record["name"], record["zone"]) == ("+", f"{domain(h, tenant)}. A", zone(h))
        assert record["after"]["records"] == ["127.0.0.1"], record
    # The secret's container shows env keys and a digest, not the value (``plan`` also asserted it is absent).
    acme_a = [c for c in data["changes"] if c["kind"] == "container" and c["name"].startswith(f"{h.owner}-acme-a-")]
    assert len(acme_a) == 2 and all("DB_PASSWORD" in c["after"]["env"]["keys"] for c in acme_a), acme_a
    first_digests = {c["after"]["env"]["digest"] for c in acme_a}
    assert plan(h)[0] == EXIT_CHANGES  # the text form too

    # A new secret is a visible change (a new digest) and still never printed, old or new.
    assert h.apply().ok
    h.import_yaml(fleet_yaml(h).replace(SECRET, "rotated-" + SECRET[::-1]))
    for args in ((), ("--json",)):
        code, text = plan(h, *args)
        assert code == EXIT_CHANGES, text
        assert "rotated-" not in text and SECRET[::-1] not in text
    data = json.loads(text)
    replaced = [c for c in data["changes"] if c["kind"] == "container"]
    # The same replicas (the name's last part is the spec's hash, which the new env changes).
    slots = sorted(c["name"].rsplit("-", 1)[0] for c in replaced)
    assert slots == [f"{h.owner}-acme-a-0", f"{h.owner}-acme-a-1"], replaced
    assert {c["action"] for c in replaced} == {"-/+"}, replaced
    assert not {c["after"]["env"]["digest"] for c in replaced} & first_digests, replaced

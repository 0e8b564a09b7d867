"""Issue 4 acceptance against a real PowerDNS 4.7: the DNS stage alone, then through the whole pipeline.

Answers are read with dnspython straight from the server's DNS port. Every request body the driver sends is
validated against the 4.7 swagger (../shared/specs/pdns-authoritative-api-swagger.yaml) before it leaves; without
../shared (a clone on its own, outside CI) only the bodies' shape is checked and the swagger test skips.
Each test works in zones named after its own owner id and deletes them afterwards.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from desired_state.specs import TenantSpec
from reconciler.core.errors import PermanentError, TransientError
from reconciler.drivers.powerdns import PowerDnsDriver, RejectedError, UnauthorizedError
from reconciler.runtime.passes.dns import PowerDnsPublisher
from renderers.dns import DnsTarget
from tests.integration.fleet import dns_answer as answer
from tests.integration.fleet import pdns_api as api
from tests.shared_specs import optional_spec_path, spec_path

pytestmark = pytest.mark.integration

SWAGGER = "pdns-authoritative-api-swagger.yaml"


# ----------------------------------------------------------------------------- request validation


class SwaggerCheck:
    """Validates PATCH/POST bodies against the swagger's Zone/RRSet/Record/Comment definitions.

    Two deliberate differences from validating the raw file, both noted in shared/specs/SOURCES.md:
    - the swagger's RRSet ``required`` lists ttl and records even for DELETE, while its own text says ttl
      MUST NOT be sent with DELETE and the server accepts DELETE without both; DELETE entries are checked
      against RRSet with only name/type/changetype required, and must carry no ttl and no records;
    - unknown keys are refused (``additionalProperties: false`` added), so a misspelt field cannot pass.
    """

    def __init__(self, swagger: Path | None) -> None:
        """Without the swagger (a clone without ../shared, outside CI) only the shape checks below run."""
        self.definitions: dict[str, Any] | None = None
        if swagger is not None:
            definitions = copy.deepcopy(yaml.safe_load(swagger.read_text())["definitions"])
            for name in ("Zone", "RRSet", "Record", "Comment"):
                definitions[name]["additionalProperties"] = False
            delete = copy.deepcopy(definitions["RRSet"])
            delete["required"] = ["name", "type", "changetype"]
            definitions["RRSetDelete"] = delete
            self.definitions = definitions
        self.checked: list[tuple[str, Any]] = []

    def validate(self, name: str, body: Any) -> None:
        if self.definitions is not None:
            schema = {"definitions": self.definitions, "$ref": f"#/definitions/{name}"}
            jsonschema.Draft4Validator(schema).validate(body)

    def check(self, method: str, body: Any) -> None:
        if method == "POST":
            self.validate("Zone", body)
            assert str(body["name"]).endswith("."), body
        elif method == "PATCH":
            zone = {k: v for k, v in body.items() if k != "rrsets"}
            self.validate("Zone", zone)
            assert set(body) == {"rrsets"}, body
            for rrset in body["rrsets"]:
                assert str(rrset["name"]).endswith("."), rrset
                if rrset["changetype"] == "DELETE":
                    self.validate("RRSetDelete", rrset)
                    assert "ttl" not in rrset and not rrset.get("records") and not rrset.get("comments"), rrset
                else:
                    assert rrset["changetype"] == "REPLACE", rrset
                    self.validate("RRSet", rrset)
        self.checked.append((method, body))

    def hook(self, request: httpx.Request) -> None:
        if request.method in ("POST", "PATCH"):
            self.check(request.method, json.loads(request.content))


# ----------------------------------------------------------------------------- helpers


def spec(name: str, domain: str) -> TenantSpec:
    return TenantSpec(name=name, domain=domain, state="running", services=())


def hand_patch(powerdns: Any, zone: str, *rrsets: dict[str, Any]) -> None:
    with api(powerdns) as client:
        response = client.patch(f"/zones/{zone}", json={"rrsets": list(rrsets)})
        assert response.status_code == 204, response.text


def rrsets_at(powerdns: Any, zone: str, name: str) -> list[dict[str, Any]]:
    with api(powerdns) as client:
        data = client.get(f"/zones/{zone}").json()
    return [r for r in data["rrsets"] if r["name"] == name]


@pytest.fixture
def zones(powerdns: Any, owner_id: str) -> Iterator[list[str]]:
    """Two zones only this test uses (created by the publisher); deleted afterwards."""
    names = [f"{owner_id}.test.", f"{owner_id}-b.test."]
    yield names
    if powerdns.running():
        with api(powerdns) as client:
            for zone in names:
                client.delete(f"/zones/{zone}")


@pytest.fixture
def swagger() -> SwaggerCheck:
    return SwaggerCheck(optional_spec_path(SWAGGER))


def test_the_swagger_checks_bodies() -> None:
    check = SwaggerCheck(spec_path(SWAGGER))
    records = [{"content": "127.0.0.1", "disabled": False}]
    rrset = {"name": "a.test.", "type": "A", "changetype": "REPLACE", "records": records}
    check.check("PATCH", {"rrsets": [{**rrset, "ttl": 60}]})
    with pytest.raises(jsonschema.ValidationError, match="tll"):
        check.check("PATCH", {"rrsets": [{**rrset, "ttl": 60, "tll": 60}]})


Factory = Callable[..., PowerDnsPublisher]


@pytest.fixture
def make_publisher(powerdns: Any, owner_id: str, zones: list[str], swagger: SwaggerCheck) -> Iterator[Factory]:
    made: list[PowerDnsPublisher] = []

    def make(**kwargs: Any) -> PowerDnsPublisher:
        driver = PowerDnsDriver(powerdns.api_url, kwargs.pop("api_key", powerdns.api_key), request_hook=swagger.hook)
        options: dict[str, Any] = {"owner": owner_id, "zones": zones, "target": DnsTarget(a=("127.0.0.1",))}
        options.update(kwargs)
        publisher = PowerDnsPublisher(driver, **options)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


# ----------------------------------------------------------------------------- the DNS stage


def test_publish_resolves_to_the_target(make_publisher: Factory, powerdns: Any, zones: list[str]) -> None:
    publisher = make_publisher(target=DnsTarget(a=("127.0.0.1", "127.0.0.2"), aaaa=("::1",), ttl=30))
    acme = f"acme.{zones[0]}"
    beta = f"beta.{zones[1]}"
    publisher.sync({"acme": spec("acme", acme), "beta": spec("beta", beta)}, [], None)

    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1", "127.0.0.2"])
    assert answer(powerdns, acme, "AAAA") == ("NOERROR", ["::1"])
    assert answer(powerdns, beta) == ("NOERROR", ["127.0.0.1", "127.0.0.2"])
    condition = publisher.condition("acme")
    assert (condition.type, condition.status, condition.reason) == ("DNSReady", "True", "Published")
    assert publisher.published("acme")
    # Zones were missing: one GET each, a POST each, and one PATCH each with all their changes.
    assert publisher.driver.requests == {"GET": 2, "POST": 2, "PATCH": 2}
    [ours] = [r for r in rrsets_at(powerdns, zones[0], acme) if r["type"] == "A"]
    assert [c["content"] for c in ours["comments"]] == [f"tenant-reconciler owner={publisher.owner} tenant=acme"]


def test_retired_tenant_gets_nxdomain(make_publisher: Factory, powerdns: Any, zones: list[str]) -> None:
    publisher = make_publisher()
    acme = f"acme.{zones[0]}"
    publisher.sync({"acme": spec("acme", acme)}, [], None)
    assert answer(powerdns, acme)[0] == "NOERROR"

    publisher.sync({}, ["acme"], frozenset({"acme"}))
    assert answer(powerdns, acme) == ("NXDOMAIN", [])
    assert not publisher.published("acme")
    assert publisher.condition("acme").reason == "Unpublished"


def test_full_pass_removes_records_of_tenants_no_longer_published(
    make_publisher: Factory, powerdns: Any, zones: list[str]
) -> None:
    publisher = make_publisher()
    acme, beta = f"acme.{zones[0]}", f"beta.{zones[0]}"
    publisher.sync({"acme": spec("acme", acme), "beta": spec("beta", beta)}, [], None)
    publisher.sync({"acme": spec("acme", acme)}, [], None)  # beta vanished from the database
    assert answer(powerdns, beta) == ("NXDOMAIN", [])
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])


def test_domain_change_removes_the_old_name_and_adds_the_new(
    make_publisher: Factory, powerdns: Any, zones: list[str]
) -> None:
    publisher = make_publisher()
    old, new, moved = f"acme.{zones[0]}", f"shop.{zones[0]}", f"acme.{zones[1]}"
    publisher.sync({"acme": spec("acme", old)}, [], None)
    publisher.sync({"acme": spec("acme", new)}, [], frozenset({"acme"}))
    assert answer(powerdns, old) == ("NXDOMAIN", [])
    assert answer(powerdns, new) == ("NOERROR", ["127.0.0.1"])
    # Across zones as well: the old zone loses the record, the new one gets it.
    publisher.sync({"acme": spec("acme", moved)}, [], None)
    assert answer(powerdns, new) == ("NXDOMAIN", [])
    assert answer(powerdns, moved) == ("NOERROR", ["127.0.0.1"])


def test_foreign_record_is_untouched_and_the_tenant_shows_the_conflict(
    make_publisher: Factory, powerdns: Any, zones: list[str]
) -> None:
    publisher = make_publisher()
    publisher.sync({}, [], None)  # creates the zones
    taken, other = f"acme.{zones[0]}", f"beta.{zones[0]}"
    foreign = {
        "name": taken,
        "type": "A",
        "ttl": 300,
        "changetype": "REPLACE",
        "records": [{"content": "10.1.2.3", "disabled": False}],
        "comments": [{"content": "made by hand", "account": "ops"}],
    }
    hand_patch(powerdns, zones[0], foreign)
    before = rrsets_at(powerdns, zones[0], taken)

    for _ in range(2):
        publisher.sync({"acme": spec("acme", taken), "beta": spec("beta", other)}, [], None)
        assert rrsets_at(powerdns, zones[0], taken) == before
        assert answer(powerdns, taken) == ("NOERROR", ["10.1.2.3"])
        condition = publisher.condition("acme")
        assert (condition.status, condition.reason) == ("False", "Conflict")
        assert f"{taken} A 10.1.2.3" in condition.message
        assert "no owner mark" in condition.message
        # One tenant's conflict does not block another.
        assert answer(powerdns, other) == ("NOERROR", ["127.0.0.1"])
        assert publisher.condition("beta").reason == "Published"

    # A foreign CNAME at the name blocks an A record too; retiring the tenant leaves the foreign record.
    hand_patch(powerdns, zones[0], {"name": taken, "type": "A", "changetype": "DELETE"})
    cname = {**foreign, "type": "CNAME", "records": [{"content": "elsewhere.example.", "disabled": False}]}
    hand_patch(powerdns, zones[0], cname)
    publisher.sync({"acme": spec("acme", taken)}, [], None)
    assert "CNAME elsewhere.example." in publisher.condition("acme").message
    publisher.sync({}, ["acme"], None)
    assert answer(powerdns, taken, "CNAME") == ("NOERROR", ["elsewhere.example."])


def test_our_record_deleted_or_edited_by_hand_is_restored(
    make_publisher: Factory, powerdns: Any, zones: list[str]
) -> None:
    publisher = make_publisher()
    acme = f"acme.{zones[0]}"
    publish = {"acme": spec("acme", acme)}
    publisher.sync(publish, [], None)
    mark = rrsets_at(powerdns, zones[0], acme)[0]["comments"]

    hand_patch(powerdns, zones[0], {"name": acme, "type": "A", "changetype": "DELETE"})
    assert answer(powerdns, acme) == ("NXDOMAIN", [])
    publisher.sync(publish, [], None)
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])

    edited = {
        "name": acme,
        "type": "A",
        "ttl": 3600,
        "changetype": "REPLACE",
        "records": [{"content": "10.6.6.6", "disabled": False}],
        "comments": [{"content": c["content"], "account": c["account"]} for c in mark],
    }
    hand_patch(powerdns, zones[0], edited)
    assert answer(powerdns, acme) == ("NOERROR", ["10.6.6.6"])
    publisher.sync(publish, [], frozenset({"acme"}))
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])
    [restored] = rrsets_at(powerdns, zones[0], acme)
    assert restored["ttl"] == 60

    # A record disabled by hand is not published: it is enabled again.
    hand_patch(powerdns, zones[0], {**edited, "ttl": 60, "records": [{"content": "127.0.0.1", "disabled": True}]})
    publisher.sync(publish, [], None)
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])


def test_idle_sync_makes_exactly_one_get_per_zone_and_no_patch(
    make_publisher: Factory, zones: list[str], swagger: SwaggerCheck
) -> None:
    publisher = make_publisher(target=DnsTarget(a=("127.0.0.1",), aaaa=("0:0::1",)))
    publish = {
        "acme": spec("acme", f"ACME.{zones[0]}"),
        "beta": spec("beta", f"beta.{zones[1]}"),
        "gamma": spec("gamma", f"gamma.{zones[1].rstrip('.')}"),
    }
    publisher.sync(publish, [], None)
    assert swagger.checked  # bodies were sent and validated
    for _ in range(3):
        publisher.driver.requests.clear()
        publisher.sync(publish, [], None)
        assert publisher.driver.requests == {"GET": len(zones)}
        publisher.driver.requests.clear()
        publisher.sync(publish, [], frozenset({"beta"}))
        assert publisher.driver.requests == {"GET": len(zones)}
    assert all(publisher.condition(t).status == "True" for t in publish)


def test_server_stopped_then_back_converges(make_publisher: Factory, powerdns: Any, zones: list[str]) -> None:
    publisher = make_publisher()
    acme, beta = f"acme.{zones[0]}", f"beta.{zones[0]}"
    publisher.sync({"acme": spec("acme", acme)}, [], None)

    powerdns.stop()
    try:
        with pytest.raises(TransientError, match="unreachable"):
            publisher.sync({"beta": spec("beta", beta)}, ["acme"], None)
        for tenant in ("acme", "beta"):
            condition = publisher.condition(tenant)
            assert (condition.status, condition.reason) == ("False", "ServerUnavailable")
        assert publisher.published("acme")  # its removal must wait for DNS
    finally:
        powerdns.start()

    publisher.sync({"beta": spec("beta", beta)}, ["acme"], None)
    assert answer(powerdns, acme) == ("NXDOMAIN", [])
    assert answer(powerdns, beta) == ("NOERROR", ["127.0.0.1"])
    assert not publisher.published("acme")
    assert publisher.condition("beta").reason == "Published"


def test_never_reached_server_counts_as_still_published(make_publisher: Factory, powerdns: Any) -> None:
    publisher = make_publisher()
    powerdns.stop()
    try:
        with pytest.raises(TransientError):
            publisher.sync({}, ["acme"], None)
        assert publisher.published("acme")
    finally:
        powerdns.start()


def test_upsert_only_never_deletes(make_publisher: Factory, powerdns: Any, zones: list[str]) -> None:
    sync = make_publisher()
    upsert = make_publisher(policy="upsert-only")
    acme, beta, new = f"acme.{zones[0]}", f"beta.{zones[0]}", f"shop.{zones[0]}"
    sync.sync({"acme": spec("acme", acme), "beta": spec("beta", beta)}, [], None)

    upsert.sync({"acme": spec("acme", new)}, ["beta"], None)
    assert answer(powerdns, new) == ("NOERROR", ["127.0.0.1"])
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])  # old name kept
    assert answer(powerdns, beta) == ("NOERROR", ["127.0.0.1"])  # retired tenant kept
    assert upsert.condition("acme").reason == "Published"
    assert upsert.condition("beta").reason == "RetainedByPolicy"
    assert not upsert.published("beta")  # nothing will remove it, so removal must not wait
    upsert.driver.requests.clear()
    upsert.sync({"acme": spec("acme", new)}, ["beta"], None)
    assert upsert.driver.requests == {"GET": 2}


def test_wrong_api_key_is_unauthorized_and_never_echoed(make_publisher: Factory, zones: list[str]) -> None:
    wrong = "wrong-key-0123456789abcdef"
    publisher = make_publisher(api_key=wrong)
    with pytest.raises(UnauthorizedError) as info:
        publisher.sync({"acme": spec("acme", f"acme.{zones[0]}")}, [], None)
    assert isinstance(info.value, PermanentError)
    assert "API key rejected" in str(info.value)
    condition = publisher.condition("acme")
    assert (condition.status, condition.reason) == ("False", "Unauthorized")
    assert wrong not in str(info.value) and wrong not in condition.message


def test_missing_zone_is_reported_when_creation_is_off(make_publisher: Factory, zones: list[str]) -> None:
    publisher = make_publisher(create_zones=False)
    publisher.sync({"acme": spec("acme", f"acme.{zones[0]}")}, [], None)
    condition = publisher.condition("acme")
    assert (condition.status, condition.reason) == ("False", "ZoneMissing")
    assert zones[0] in condition.message
    assert publisher.driver.requests == {"GET": 2}


def test_domain_outside_the_zones_is_a_tenant_error(make_publisher: Factory, powerdns: Any, zones: list[str]) -> None:
    publisher = make_publisher()
    publisher.sync({"acme": spec("acme", "acme.example.org"), "beta": spec("beta", f"beta.{zones[0]}")}, [], None)
    condition = publisher.condition("acme")
    assert (condition.status, condition.reason) == ("False", "OutsideZones")
    assert "acme.example.org" in condition.message and zones[0] in condition.message
    assert answer(powerdns, f"beta.{zones[0]}") == ("NOERROR", ["127.0.0.1"])


def test_invalid_tenants_keep_their_records(make_publisher: Factory, powerdns: Any, zones: list[str]) -> None:
    publisher = make_publisher()
    acme = f"acme.{zones[0]}"
    publisher.sync({"acme": spec("acme", acme)}, [], None)
    publisher.sync({}, [], None, keep=frozenset({"acme"}))  # acme's row became invalid
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])


def test_switch_from_addresses_to_a_cname_target(make_publisher: Factory, powerdns: Any, zones: list[str]) -> None:
    acme = f"acme.{zones[0]}"
    make_publisher().sync({"acme": spec("acme", acme)}, [], None)
    publisher = make_publisher(target=DnsTarget(cname="Ingress.Example.NET"))
    publisher.sync({"acme": spec("acme", acme)}, [], None)  # DELETE A and REPLACE CNAME in one PATCH
    assert answer(powerdns, acme, "CNAME") == ("NOERROR", ["ingress.example.net."])
    assert [r["type"] for r in rrsets_at(powerdns, zones[0], acme)] == ["CNAME"]
    publisher.driver.requests.clear()
    publisher.sync({"acme": spec("acme", acme)}, [], None)
    assert publisher.driver.requests == {"GET": 2}


def test_a_rejected_rrset_sets_aside_only_its_tenant(
    powerdns: Any, owner_id: str, zones: list[str], swagger: SwaggerCheck
) -> None:
    """A foreign CNAME appears between our GET and our PATCH: the server refuses acme's A (422), the PATCH is
    sent again without acme, beta is published; the next sync sees the CNAME and reports a conflict."""
    acme, beta = f"acme.{zones[0]}", f"beta.{zones[0]}"
    raced = False

    def hook(request: httpx.Request) -> None:
        nonlocal raced
        swagger.hook(request)
        if request.method == "PATCH" and not raced:
            raced = True
            cname = {"name": acme, "type": "CNAME", "ttl": 60, "changetype": "REPLACE"}
            hand_patch(powerdns, zones[0], {**cname, "records": [{"content": "race.example.", "disabled": False}]})

    driver = PowerDnsDriver(powerdns.api_url, powerdns.api_key, request_hook=hook)
    publisher = PowerDnsPublisher(driver, owner=owner_id, zones=zones, target=DnsTarget(a=("127.0.0.1",)))
    try:
        publish = {"acme": spec("acme", acme), "beta": spec("beta", beta)}
        publisher.sync(publish, [], None)
        condition = publisher.condition("acme")
        assert (condition.status, condition.reason) == ("False", "Rejected")
        assert f"rrset {acme} A" in condition.message
        assert publisher.condition("beta").reason == "Published"
        assert answer(powerdns, beta) == ("NOERROR", ["127.0.0.1"])
        assert driver.requests["PATCH"] == 2  # rejected, then sent again without acme (zones[1] had no change)
        publisher.sync(publish, [], None)
        assert publisher.condition("acme").reason == "Conflict"
        assert answer(powerdns, acme, "CNAME") == ("NOERROR", ["race.example."])
    finally:
        publisher.close()


def test_driver_lists_zones_and_names_a_rejected_rrset(powerdns: Any, zones: list[str], swagger: SwaggerCheck) -> None:
    from reconciler.core.dns import OwnerMark, RRset, RRsetChange

    driver = PowerDnsDriver(f"{powerdns.api_url}/api/v1/", powerdns.api_key, request_hook=swagger.hook)
    try:
        assert driver.create_zone(zones[0]) is not None
        assert driver.create_zone(zones[0]) is None  # 409: exists
        assert zones[0] in driver.list_zones()
        outside = RRset.of("x.elsewhere.test", "A", 60, ["127.0.0.1"], OwnerMark("o", "x"))
        with pytest.raises(RejectedError) as info:
            driver.patch_zone(zones[0], [RRsetChange("REPLACE", zones[0], "x", "test", None, outside)])
        assert (info.value.name, info.value.type) == ("x.elsewhere.test.", "A")
        assert "rrset x.elsewhere.test. A" in str(info.value)
    finally:
        driver.close()


# ----------------------------------------------------------------------------- through the whole pipeline

PIPELINE_YAML = """
catalog:
  a: {{image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.1}}
tenants:
  - name: acme
    domain: acme.{zone}
    state: {acme_state}
    services:
      a: {{}}
  - name: globex
    domain: {globex_domain}
    services:
      a: {{}}
"""


def _pipeline_yaml(zone: str, acme_state: str = "running", globex_domain: str = "") -> str:
    return PIPELINE_YAML.format(
        zone=zone.rstrip("."), acme_state=acme_state, globex_domain=globex_domain or f"globex.{zone.rstrip('.')}"
    )


@pytest.fixture
def dns_harness(
    owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, powerdns: Any, zones: list[str]
) -> Iterator[Any]:
    """The real reconciler (containers, no routing) with the DNS stage on this test's zone."""
    from tests.integration.harness import Harness

    h = Harness.create(
        owner_id,
        postgres_url,
        docker_client,
        powerdns_url=powerdns.api_url,
        powerdns_api_key=powerdns.api_key,
        powerdns_zones=json.dumps(zones[:1]),
    )
    try:
        yield h
    finally:
        h.stop_run()
        h.rt.reconciler.dns.close()  # type: ignore[union-attr]
        h.rt.engine.dispose()


def _dns_condition(h: Any, tenant: str) -> Any:
    from desired_state.status import read_status

    status = read_status(h.rt.engine, tenant)
    assert status is not None, f"no status for {tenant}"
    return status.condition("DNSReady")


def test_pipeline_converge_publishes_running_tenants_and_idles(
    dns_harness: Any, powerdns: Any, zones: list[str]
) -> None:
    h = dns_harness
    zone = zones[0]
    h.import_yaml(_pipeline_yaml(zone))
    result = h.apply()
    assert result.ok, result.errors
    assert len(h.running("acme")) == 1 and len(h.running("globex")) == 1
    # Containers were created in this pass, after the sync at its start: the records follow on the next pass.
    h.apply()
    for tenant in ("acme", "globex"):
        assert answer(powerdns, f"{tenant}.{zone}") == ("NOERROR", ["127.0.0.1"])
        condition = _dns_condition(h, tenant)
        assert (condition.status, condition.reason) == ("True", "Published")

    driver = h.rt.reconciler.dns.driver
    driver.requests.clear()
    assert h.apply().ok
    assert driver.requests == {"GET": 1}


def test_pipeline_absent_tenant_gets_nxdomain_and_goes(dns_harness: Any, powerdns: Any, zones: list[str]) -> None:
    h = dns_harness
    zone = zones[0]
    h.import_yaml(_pipeline_yaml(zone))
    h.apply()
    h.apply()
    assert answer(powerdns, f"acme.{zone}") == ("NOERROR", ["127.0.0.1"])

    h.import_yaml(_pipeline_yaml(zone, acme_state="absent"))
    assert h.apply().ok
    assert answer(powerdns, f"acme.{zone}") == ("NXDOMAIN", [])
    assert h.containers("acme") == []
    assert answer(powerdns, f"globex.{zone}") == ("NOERROR", ["127.0.0.1"])


def test_pipeline_domain_change_moves_the_record(dns_harness: Any, powerdns: Any, zones: list[str]) -> None:
    h = dns_harness
    zone = zones[0].rstrip(".")
    h.import_yaml(_pipeline_yaml(zones[0]))
    h.apply()
    h.apply()
    h.import_yaml(_pipeline_yaml(zones[0], globex_domain=f"shop.{zone}"))
    assert h.apply().ok
    assert answer(powerdns, f"globex.{zone}") == ("NXDOMAIN", [])
    assert answer(powerdns, f"shop.{zone}") == ("NOERROR", ["127.0.0.1"])


def test_pipeline_powerdns_down_containers_converge_then_records_follow(
    dns_harness: Any, powerdns: Any, zones: list[str]
) -> None:
    h = dns_harness
    zone = zones[0]
    h.import_yaml(_pipeline_yaml(zone))
    h.apply()
    h.apply()

    powerdns.stop()
    try:
        # globex gets a second replica, acme goes away: containers keep converging, acme's removal waits.
        h.import_yaml(_pipeline_yaml(zone, acme_state="absent").replace("      a: {}\n", "      a: {replicas: 2}\n"))
        h.apply()
        assert len(h.running("globex")) == 2
        condition = _dns_condition(h, "globex")
        assert (condition.status, condition.reason) == ("False", "ServerUnavailable")
        assert len(h.running("acme")) == 1  # its record may still be served: the containers stay
    finally:
        powerdns.start()

    assert h.apply().ok
    assert answer(powerdns, f"acme.{zone}") == ("NXDOMAIN", [])
    assert h.containers("acme") == []
    assert answer(powerdns, f"globex.{zone}") == ("NOERROR", ["127.0.0.1"])
    assert _dns_condition(h, "globex").status == "True"

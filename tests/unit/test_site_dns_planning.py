"""Site hosts in the DNS plan (issue 16): planned with the tenants' records, by the one planning function."""

from __future__ import annotations

from typing import Any

import pytest

from desired_state.model import DesiredState
from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.dns import OwnerMark, RRset
from reconciler.core.plan import Action, Plan
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.resources import Snapshot
from reconciler.planning import DnsSettings, Observed, PassContext, PlanSettings, SiteHosts, ZoneState, plan_pass
from reconciler.runtime.settings import Settings
from reconciler.runtime.wiring import site_dns_target
from renderers.containers import Naming
from renderers.dns import DnsTarget

OWNER = "t"
ZONE = "erp.test."
NGINX = DnsTarget(a=("192.0.2.10",), ttl=60)
CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1", "public": True}})
SETTINGS = PlanSettings(naming=Naming("erp", OWNER), dns=DnsSettings(zones=(ZONE,), target=DnsTarget(a=("127.0.0.1",))))


def _desired(**services: Any) -> DesiredState:
    spec = build_tenant({"name": "acme", "domain": "acme.erp.test", "services": services or {"a": {}}}, CATALOG)
    return DesiredState(catalog=CATALOG, tenants={"acme": spec}, errors={})


def _tenant_record() -> RRset:
    return RRset.of("acme.erp.test", "A", 60, ["127.0.0.1"], OwnerMark(OWNER, "acme"))


def _site_record(site: str = "shop", host: str = "shop.erp.test") -> RRset:
    return RRset.of(host, "A", 60, ["192.0.2.10"], OwnerMark(OWNER, f"site:{site}"))


def _plan(
    rrsets: list[RRset],
    sites: SiteHosts | None,
    desired: DesiredState | None = None,
    settings: PlanSettings = SETTINGS,
) -> Plan:
    observed = Observed(Snapshot(), zones={ZONE: ZoneState(rrsets=tuple(rrsets))})
    return plan_pass(desired or _desired(), observed, settings, PassContext(sites=sites)).plan


def _dns(plan: Plan) -> list[tuple[str, str, str]]:
    return [(c.action.value, c.tenant, c.name) for c in plan.of_kind("dns")]


def test_a_site_host_gets_an_owned_record_at_nginx_address_beside_the_tenant() -> None:
    plan = _plan([], SiteHosts(NGINX, {"shop": "shop.erp.test", "elsewhere": "www.example.com"}))
    assert _dns(plan) == [("+", "acme", "acme.erp.test. A"), ("+", "site:shop", "shop.erp.test. A")]
    site = next(c for c in plan.of_kind("dns") if c.tenant == "site:shop")
    assert isinstance(site.after, RRset)
    assert site.after.records == ("192.0.2.10",)
    assert site.after.owner is not None and site.after.owner.comment() == "tenant-reconciler owner=t tenant=site:shop"
    tenant = next(c for c in plan.of_kind("dns") if c.tenant == "acme")
    assert isinstance(tenant.after, RRset) and tenant.after.owner == OwnerMark(OWNER, "acme")  # format unchanged
    assert not plan.blocked  # a host outside the managed zones simply gets no record


def test_a_converged_site_and_tenant_plan_no_dns_change() -> None:
    plan = _plan([_tenant_record(), _site_record()], SiteHosts(NGINX, {"shop": "shop.erp.test"}))
    assert _dns(plan) == []


def test_a_site_gone_from_the_database_loses_its_record_and_the_tenant_keeps_its() -> None:
    plan = _plan([_tenant_record(), _site_record()], SiteHosts(NGINX, {}))
    assert _dns(plan) == [("-", "site:shop", "shop.erp.test. A")]
    assert plan.of_kind("dns")[0].reason == "site shop is not published"


def test_a_changed_public_address_or_host_is_corrected() -> None:
    moved = SiteHosts(DnsTarget(a=("192.0.2.20",)), {"shop": "shop.erp.test"})
    assert _dns(_plan([_tenant_record(), _site_record()], moved)) == [("~", "site:shop", "shop.erp.test. A")]
    renamed = SiteHosts(NGINX, {"shop": "store.erp.test"})
    assert sorted(_dns(_plan([_tenant_record(), _site_record()], renamed))) == [
        ("+", "site:shop", "store.erp.test. A"),
        ("-", "site:shop", "shop.erp.test. A"),
    ]


def test_without_the_sites_stage_or_for_an_invalid_site_site_records_are_left_alone() -> None:
    # A full pass deletes ours of every tenant it does not know; a site's records are not a tenant's.
    assert _dns(_plan([_tenant_record(), _site_record()], None)) == []
    assert _dns(_plan([_tenant_record(), _site_record()], SiteHosts(NGINX, {}, keep=frozenset({"shop"})))) == []


def test_a_site_on_a_tenant_route_host_nobody_holds_yet_is_refused_naming_the_tenant() -> None:
    desired = _desired(a={"route": {"host": "shop.erp.test"}})
    plan = _plan([], SiteHosts(NGINX, {"shop": "shop.erp.test"}), desired)
    assert _dns(plan) == [("+", "acme", "acme.erp.test. A"), ("+", "acme", "shop.erp.test. A")]
    [blocked] = plan.blocked
    assert (blocked.tenant, blocked.kind, blocked.reason) == ("site:shop", "dns", "Conflict")
    assert "site 'shop': host = 'shop.erp.test' is a route host of tenant 'acme', which claimed it first" in (
        blocked.message
    )


def test_a_tenant_route_added_on_a_published_site_host_is_refused_naming_the_site() -> None:
    desired = _desired(a={"route": {"host": "shop.erp.test"}})
    plan = _plan([_tenant_record(), _site_record()], SiteHosts(NGINX, {"shop": "shop.erp.test"}), desired)
    assert _dns(plan) == []  # the tenant gets no DNS change at all this pass, the site keeps its record
    [blocked] = plan.blocked
    assert (blocked.tenant, blocked.reason) == ("acme", "Conflict")
    assert "host shop.erp.test is served by site 'shop' (Nginx), which claimed it first" in blocked.message


def test_a_foreign_record_at_the_site_host_blocks_only_the_site() -> None:
    foreign = RRset.of("shop.erp.test", "A", 300, ["10.9.9.9"])
    plan = _plan([foreign], SiteHosts(NGINX, {"shop": "shop.erp.test"}))
    assert _dns(plan) == [("+", "acme", "acme.erp.test. A")]
    assert [(b.tenant, b.reason) for b in plan.blocked] == [("site:shop", "Conflict")]


def test_an_unreadable_zone_keeps_the_site_records_as_they_are() -> None:
    observed = Observed(Snapshot(), zones={ZONE: ZoneState(error="server said no")})
    plan = plan_pass(_desired(), observed, SETTINGS, PassContext(sites=SiteHosts(NGINX, {}))).plan
    assert _dns(plan) == []


def test_removing_most_site_records_is_refused_whole_by_the_mass_delete_guard() -> None:
    settings = PlanSettings(naming=SETTINGS.naming, dns=SETTINGS.dns, limits=MassDeleteLimits(0.5, 3))
    records = [_tenant_record(), *(_site_record(f"s{i}", f"s{i}.erp.test") for i in range(4))]
    plan = _plan(records, SiteHosts(NGINX, {}), settings=settings)
    assert plan.changes == ()
    deletes = [r.change.tenant for r in plan.refused if r.change.kind == "dns" and r.change.action is Action.DELETE]
    assert deletes == ["site:s0", "site:s1", "site:s2", "site:s3"]
    assert "4 of 5 DNS rrsets" in plan.errors[0]


@pytest.mark.parametrize(
    ("fields", "a", "aaaa"),
    [
        ({"nginx_listen": "127.0.0.1:8088"}, ("127.0.0.1",), ()),
        ({"nginx_listen": "[::1]:80"}, (), ("::1",)),
        ({"nginx_listen": "*:80", "nginx_public_address": "192.0.2.10"}, ("192.0.2.10",), ()),
    ],
)
def test_site_records_point_at_the_public_address_else_the_listen_address(
    fields: dict[str, str], a: tuple[str, ...], aaaa: tuple[str, ...]
) -> None:
    target = site_dns_target(Settings(**fields))  # type: ignore[arg-type]
    assert (target.a, target.aaaa) == (a, aaaa)


def test_an_unusable_public_address_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"set RECONCILER_NGINX_PUBLIC_ADDRESS"):
        site_dns_target(Settings(nginx_listen="*:80"))
    with pytest.raises(ValueError, match=r"nginx_public_address = 'nginx.example' is not an IPv4 or IPv6 address"):
        site_dns_target(Settings(nginx_public_address="nginx.example"))

"""Rendering a tenant's DNS records: target, TTL, zone choice, owner mark, errors."""

from __future__ import annotations

import pytest

from desired_state.specs import TenantSpec
from reconciler.core.dns import OwnerMark, RRset
from renderers.dns import DnsTarget, OutsideZonesError, TenantRecords, normalise_zones, render_records, zone_for


def spec(name: str = "acme", domain: str = "acme.erp.test") -> TenantSpec:
    return TenantSpec(name=name, domain=domain, state="running", services=())


def test_a_and_aaaa_targets() -> None:
    target = DnsTarget(a=("127.0.0.2", "127.0.0.1"), aaaa=("::1",), ttl=30)
    records = render_records(spec(), target, ("erp.test.",), "test")
    mark = OwnerMark("test", "acme")
    assert records == TenantRecords(
        tenant="acme",
        zone="erp.test.",
        rrsets=(
            RRset("acme.erp.test.", "A", 30, ("127.0.0.1", "127.0.0.2"), mark),
            RRset("acme.erp.test.", "AAAA", 30, ("::1",), mark),
        ),
    )


def test_cname_target() -> None:
    records = render_records(spec(), DnsTarget(cname="Ingress.Example"), ("erp.test",), "test")
    assert records.rrsets == (RRset("acme.erp.test.", "CNAME", 60, ("ingress.example.",), OwnerMark("test", "acme")),)


def test_longest_matching_zone_wins() -> None:
    zones = normalise_zones(["test", "erp.test.", "eu.erp.test"])
    assert zone_for("acme.eu.erp.test", zones) == "eu.erp.test."
    assert zone_for("acme.erp.test.", zones) == "erp.test."
    assert zone_for("ACME.other.test", zones) == "test."
    assert zone_for("erp.test", zones) == "erp.test."


def test_suffix_must_match_whole_labels() -> None:
    assert zone_for("acme.myerp.test", ("erp.test.",)) is None


def test_domain_outside_every_zone_is_a_tenant_error() -> None:
    with pytest.raises(OutsideZonesError) as info:
        render_records(spec(domain="acme.example.com"), DnsTarget(a=("127.0.0.1",)), ("erp.test.",), "test")
    assert info.value.tenant == "acme"
    message = str(info.value)
    assert "acme.example.com" in message and "erp.test." in message


def test_no_zones_configured_is_reported_as_such() -> None:
    with pytest.raises(OutsideZonesError, match="no DNS zones are configured"):
        render_records(spec(), DnsTarget(a=("127.0.0.1",)), (), "test")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"a": ("not-an-ip",)}, "dns_target_a"),
        ({"aaaa": ("127.0.0.1",)}, "dns_target_aaaa"),
        ({"a": ("127.0.0.1",), "cname": "ingress.example."}, "CNAME"),
        ({}, "no DNS target"),
        ({"a": ("127.0.0.1",), "ttl": 0}, "ttl"),
        ({"cname": "bad name!"}, "dns_target_cname"),
        ({"cname": ".".join(["a" * 60] * 5)}, "dns_target_cname"),
    ],
)
def test_bad_targets_are_rejected_with_the_setting_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DnsTarget(**kwargs)  # type: ignore[arg-type]

"""PowerDNS API bodies and conversions (pure parts of the driver) and 422 attribution in the DNS stage.

The integration tests check every body actually sent against the 4.7 swagger; these pin the shapes."""

from __future__ import annotations

from reconciler.core.dns import OwnerMark, RRset, RRsetChange
from reconciler.drivers.powerdns import RejectedError, patch_body, rrset_body, rrset_from_api, zone_body
from reconciler.runtime.passes.dns import rejected_tenants

MARK = OwnerMark("test", "acme")
ZONE = "erp.test."


def test_replace_body_carries_records_ttl_and_only_our_comment() -> None:
    rrset = RRset.of("acme.erp.test", "A", 60, ["127.0.0.2", "127.0.0.1"], MARK)
    assert rrset_body(RRsetChange("REPLACE", ZONE, "acme", "missing", None, rrset)) == {
        "name": "acme.erp.test.",
        "type": "A",
        "ttl": 60,
        "changetype": "REPLACE",
        "records": [{"content": "127.0.0.1", "disabled": False}, {"content": "127.0.0.2", "disabled": False}],
        "comments": [{"content": "tenant-reconciler owner=test tenant=acme", "account": "tenant-reconciler"}],
    }


def test_delete_body_has_no_ttl_records_or_comments() -> None:
    rrset = RRset.of("acme.erp.test", "A", 60, ["127.0.0.1"], MARK)
    body = patch_body([RRsetChange("DELETE", ZONE, "acme", "retired", before=rrset)])
    assert body == {"rrsets": [{"name": "acme.erp.test.", "type": "A", "changetype": "DELETE"}]}


def test_zone_body_is_a_native_zone_with_a_trailing_dot() -> None:
    assert zone_body("erp.test") == {"name": "erp.test.", "kind": "Native", "nameservers": []}


def test_observed_rrset_finds_our_mark_among_comments_and_skips_disabled_records() -> None:
    item = {
        "name": "Acme.erp.test.",
        "type": "A",
        "ttl": 60,
        "records": [{"content": "127.0.0.1", "disabled": False}, {"content": "10.0.0.1", "disabled": True}],
        "comments": [
            {"content": "checked by ops", "account": "ops", "modified_at": 1},
            {"content": "tenant-reconciler owner=test tenant=acme", "account": "tenant-reconciler"},
        ],
    }
    assert rrset_from_api(item) == RRset("acme.erp.test.", "A", 60, ("127.0.0.1",), MARK)


def test_observed_rrset_without_our_mark_is_foreign() -> None:
    item = {"name": "erp.test.", "type": "SOA", "ttl": 3600, "records": [{"content": "a. b. 1 2 3 4 5"}]}
    assert rrset_from_api(item).owner is None


def _change(tenant: str, name: str, content: str = "127.0.0.1", type_: str = "A") -> RRsetChange:
    rrset = RRset.of(name, type_, 60, [content], OwnerMark("test", tenant))
    return RRsetChange("REPLACE", ZONE, tenant, "missing", None, rrset)


def test_a_rejection_naming_an_rrset_blames_its_tenant_only() -> None:
    changes = [_change("acme", "acme.erp.test"), _change("beta", "beta.erp.test")]
    exc = RejectedError("conflict", zone=ZONE, name="acme.erp.test.", type_="A")
    assert rejected_tenants(changes, exc) == {"acme"}


def test_a_rejected_record_content_blames_every_tenant_carrying_it() -> None:
    changes = [
        _change("acme", "acme.erp.test", "bad.example.", "CNAME"),
        _change("beta", "beta.erp.test", "bad.example.", "CNAME"),
        _change("gamma", "gamma.erp.test"),
    ]
    exc = RejectedError("bad", zone=ZONE, name="acme.erp.test.", type_="CNAME", content="Bad.Example")
    assert rejected_tenants(changes, exc) == {"acme", "beta"}


def test_an_unattributable_rejection_blames_everyone_in_the_patch() -> None:
    changes = [_change("acme", "acme.erp.test"), _change("beta", "beta.erp.test")]
    assert rejected_tenants(changes, RejectedError("?", zone=ZONE, name=None, type_=None)) == {"acme", "beta"}

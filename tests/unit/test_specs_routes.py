"""Routes and weighted versions in the desired state: defaults, validation errors, cross-tenant conflicts."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from desired_state.inputs import CatalogEntry
from desired_state.networks import allowed_networks
from desired_state.route_claims import route_conflicts
from desired_state.specs import SpecError, TenantSpec, build_tenant, parse_catalog

CATALOG = parse_catalog(
    {
        "a": {"image": "erp/demo-svc:1", "public": True},
        "b": {"image": "erp/demo-svc:1"},
    }
)


def tenant(services: dict[str, Any], name: str = "acme", domain: str = "acme.erp.test", **extra: Any) -> TenantSpec:
    return build_tenant({"name": name, "domain": domain, "services": services, **extra}, CATALOG)


def error(
    services: dict[str, Any], base_domain: str | None = None, catalog: dict[str, CatalogEntry] = CATALOG
) -> SpecError:
    with pytest.raises(SpecError) as caught:
        build_tenant({"name": "acme", "domain": "acme.erp.test", "services": services}, catalog, base_domain)
    return caught.value


def test_public_service_is_routed_at_the_tenant_domain_by_default() -> None:
    spec = tenant({"a": {}, "b": {}})
    a, b = spec.service("a"), spec.service("b")
    assert a is not None and b is not None
    assert a.route is not None and a.route.host == "acme.erp.test" and a.route.path is None
    assert b.route is None


def test_route_fields_are_normalised() -> None:
    spec = tenant(
        {
            "a": {"route": {"host": "Shop.Acme.ERP.test.", "path": "/api/", "allow": ["10.0.0.0/8", "2001:db8::/32"]}},
            "b": {"route": {"path": "/b", "deny": ["127.0.0.2"]}},
        }
    )
    a, b = spec.service("a"), spec.service("b")
    assert a is not None and a.route is not None
    assert (a.route.host, a.route.path, a.route.allow) == (
        "shop.acme.erp.test",
        "/api",
        ("10.0.0.0/8", "2001:db8::/32"),
    )
    assert b is not None and b.route is not None
    assert (b.route.host, b.route.path, b.route.deny) == ("acme.erp.test", "/b", ("127.0.0.2/32",))


def test_root_path_means_no_path() -> None:
    spec = tenant({"a": {"route": {"path": "/"}}})
    a = spec.service("a")
    assert a is not None and a.route is not None and a.route.path is None


@pytest.mark.parametrize(
    ("route", "field", "value"),
    [
        ({"allow": ["10.0.0.300/8"]}, "services.a.route.allow", ["10.0.0.300/8"]),
        ({"deny": ["10.0.0.1/8"]}, "services.a.route.deny", ["10.0.0.1/8"]),
        ({"deny": "10.0.0.0/8"}, "services.a.route.deny", "10.0.0.0/8"),
        ({"host": "no spaces.erp.test"}, "services.a.route.host", "no spaces.erp.test"),
        ({"path": "/a`)||Host(`x"}, "services.a.route.path", "/a`)||Host(`x"),
        ({"path": "api"}, "services.a.route.path", "api"),
    ],
)
def test_invalid_route_fields_name_tenant_field_and_value(route: dict[str, Any], field: str, value: Any) -> None:
    problem = error({"a": {"route": route}})
    assert problem.tenant == "acme"
    assert problem.field == field
    assert problem.value == value


def test_host_bits_error_suggests_the_network() -> None:
    problem = error({"a": {"route": {"deny": ["10.0.0.1/8"]}}})
    assert "10.0.0.0/8" in problem.message


def test_host_outside_base_domain_is_rejected() -> None:
    problem = error({"a": {"route": {"host": "acme.example.com"}}}, base_domain="erp.test")
    assert (problem.tenant, problem.field, problem.value) == ("acme", "services.a.route.host", "acme.example.com")
    assert "erp.test" in problem.message
    # The default host is the tenant's domain; it must be under the base domain too.
    problem = error({"a": {}}, base_domain="other.test")
    assert (problem.field, problem.value) == ("domain", "acme.erp.test")
    # A look-alike suffix is not under the base domain.
    assert error({"a": {"route": {"host": "acme.evilerp.test"}}}, base_domain="erp.test").field.endswith("host")
    spec = build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"a": {}}}, CATALOG, "erp.test")
    assert spec.service("a") is not None


def test_deny_everything_allowed_is_rejected() -> None:
    problem = error({"a": {"route": {"allow": ["10.0.0.0/8"], "deny": ["10.0.0.0/7"]}}})
    assert problem.field == "services.a.route.deny"


def test_two_services_of_one_tenant_cannot_share_host_and_path() -> None:
    problem = error({"a": {}, "b": {"route": {}}})
    assert problem.field == "services.b.route" and problem.value == "acme.erp.test"
    # Different paths on one host are fine.
    spec = tenant({"a": {}, "b": {"route": {"path": "/b"}}})
    assert [s.route.address for s in spec.services if s.route] == ["acme.erp.test", "acme.erp.test/b"]


def test_versions_get_tracks_and_inherit_replicas() -> None:
    spec = tenant(
        {
            "a": {
                "replicas": 2,
                "versions": [
                    {"image": "erp/demo-svc:1", "weight": 90},
                    {"image": "erp/demo-svc:2", "replicas": 1, "weight": 10},
                ],
            }
        }
    )
    a = spec.service("a")
    assert a is not None
    assert [(v.track, v.image, v.replicas, v.weight) for v in a.tracks()] == [
        ("", "erp/demo-svc:1", 2, 90),
        ("b", "erp/demo-svc:2", 1, 10),
    ]
    assert (a.image, a.replicas) == ("erp/demo-svc:1", 3)


def test_single_version_service_has_one_plain_track() -> None:
    a = tenant({"a": {"image": "erp/demo-svc:2", "replicas": 3}}).service("a")
    assert a is not None and a.versions == ()
    assert [(v.track, v.image, v.replicas) for v in a.tracks()] == [("", "erp/demo-svc:2", 3)]


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        ([{"image": "erp/demo-svc:1", "weight": 0}, {"image": "erp/demo-svc:2", "weight": 0}], "sum to 0"),
        ([{"image": "erp/demo-svc:1", "weight": -1}, {"image": "erp/demo-svc:2"}], "greater than or equal to 0"),
        ([{"image": "erp/demo-svc:1"}, {"image": "erp/demo-svc:1"}], "same image"),
        ([{"image": f"erp/demo-svc:{i}"} for i in range(3)], "at most 2"),
        ([{"image": "erp/demo-svc:1", "weight": 1.5}], "integer"),
    ],
)
def test_unusable_versions_are_rejected(versions: list[dict[str, Any]], message: str) -> None:
    problem = error({"a": {"versions": versions}})
    assert problem.tenant == "acme"
    assert problem.field.startswith("services.a.versions")
    assert message in problem.message


def test_image_and_versions_together_are_ambiguous() -> None:
    problem = error({"a": {"image": "erp/demo-svc:2", "versions": [{"image": "erp/demo-svc:1"}]}})
    assert (problem.field, problem.value) == ("services.a.image", "erp/demo-svc:2")


def test_newer_tenant_claiming_a_taken_route_gets_the_error() -> None:
    old = tenant({"a": {}}, name="acme")
    new = tenant({"a": {"route": {"host": "acme.erp.test"}}}, name="intruder", domain="intruder.erp.test")
    path = tenant({"a": {"route": {"host": "acme.erp.test", "path": "/shop"}}}, name="shop", domain="shop.erp.test")
    other = tenant({"a": {}}, name="globex", domain="globex.erp.test")
    errors = route_conflicts(
        {"acme": old, "intruder": new, "shop": path, "globex": other},
        {"acme": 1, "intruder": 2, "shop": 3, "globex": 4},
    )
    assert sorted(errors) == ["intruder", "shop"]
    assert errors["intruder"].field == "services.a.route" and "'acme'" in errors["intruder"].message
    # Whoever is older wins, whatever the name order.
    errors = route_conflicts({"acme": old, "intruder": new}, {"acme": 9, "intruder": 2})
    assert list(errors) == ["acme"]


def test_absent_tenants_claim_nothing() -> None:
    gone = tenant({"a": {}}, name="acme", state="absent")
    new = tenant({"a": {"route": {"host": "acme.erp.test"}}}, name="newco", domain="newco.erp.test")
    assert route_conflicts({"acme": gone, "newco": new}, {"acme": 1, "newco": 2}) == {}


def test_paths_on_a_shared_host_do_not_conflict() -> None:
    one = tenant({"a": {"route": {"host": "erp.test", "path": "/acme"}}}, name="acme")
    two = tenant({"a": {"route": {"host": "erp.test", "path": "/globex"}}}, name="globex", domain="globex.erp.test")
    assert route_conflicts({"acme": one, "globex": two}, {"acme": 1, "globex": 2}) == {}


def test_allowed_networks_is_allow_minus_deny() -> None:
    everything_but_one = allowed_networks((), ("127.0.0.2/32",))
    assert [str(n) for n in everything_but_one if n.version == 6] == ["::/0"]
    v4 = [n for n in everything_but_one if n.version == 4]
    assert len(v4) == 32
    assert sum(n.num_addresses for n in v4) == 2**32 - 1
    assert not any(n.overlaps(ipaddress.ip_network("127.0.0.2/32")) for n in v4)
    assert [str(n) for n in allowed_networks(("127.0.0.0/30",), ("127.0.0.2/32",))] == ["127.0.0.0/31", "127.0.0.3/32"]
    assert allowed_networks(("10.0.0.0/8",), ("0.0.0.0/0",)) == []

"""Traefik dynamic configuration rendered from specs: every case validated against the vendored v3 schema.

The schema is in ../shared/specs (``tests.shared_specs``): without it (a clone on its own) the schema tests skip
and the other tests check the rendering only; in CI a missing schema fails.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from desired_state.specs import TenantSpec, build_tenant, parse_catalog
from reconciler.core.resources import Container
from reconciler.core.routes import RouteTable, parse_file_header, verify
from renderers.containers import Naming, render_tenant
from renderers.traefik import RenderedRoutes, RouteNaming, render_file, render_maintenance, render_routes
from tests.shared_specs import optional_spec_path, spec_path

SCHEMA_FILE = "traefik-v3-file-provider.json"

CATALOG = parse_catalog(
    {
        "a": {"image": "erp/demo-svc:1", "public": True, "health": "/health"},
        "b": {"image": "erp/demo-svc:1", "port": 9090, "health": "/ready"},
    }
)
NAMING = RouteNaming(prefix="erp")


def spec(services: dict[str, Any], name: str = "acme") -> TenantSpec:
    return build_tenant({"name": name, "domain": f"{name}.erp.test", "services": services}, CATALOG)


def backends(tenant: TenantSpec) -> list[Container]:
    """Every rendered container as if running at 10.1.0.(n+2), with the observed port unknown (0)."""
    containers = render_tenant(tenant, Naming(prefix="erp", owner="t")).containers
    return [replace(c, ip=f"10.1.0.{n + 2}", port=0) for n, c in enumerate(containers)]


def render(tenant: TenantSpec, given: list[Container] | None = None) -> RenderedRoutes:
    rendered = render_routes(tenant, backends(tenant) if given is None else given, naming=NAMING, entrypoint="web")
    found = validator()
    if found is not None:
        errors = sorted(found.iter_errors(rendered.config), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return rendered


@functools.cache
def _validator(path: Path) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(path.read_text()))


def validator() -> jsonschema.Draft7Validator | None:
    """The v3 file-provider schema's validator; None outside CI when ../shared/specs is missing."""
    path = optional_spec_path(SCHEMA_FILE)
    return _validator(path) if path is not None else None


def http(rendered: RenderedRoutes) -> dict[str, Any]:
    return rendered.config["http"]


def test_schema_is_the_vendored_one() -> None:
    found = _validator(spec_path(SCHEMA_FILE))
    jsonschema.Draft7Validator.check_schema(found.schema)
    assert not found.is_valid({"http": {"routers": {"r": {"rule": "Host(`x`)"}}}})


def test_replicas_behind_one_load_balancer() -> None:
    rendered = render(spec({"a": {"replicas": 2}}))
    config = http(rendered)
    assert config["routers"] == {
        "erp-acme.a": {
            "rule": "Host(`acme.erp.test`)",
            "entryPoints": ["web"],
            "service": "erp-acme.a",
            "middlewares": ["erp-acme.retry"],
        }
    }
    balancer = config["services"]["erp-acme.a"]["loadBalancer"]
    assert balancer["servers"] == [{"url": "http://10.1.0.2:8080"}, {"url": "http://10.1.0.3:8080"}]
    assert balancer["healthCheck"]["path"] == "/health"
    assert balancer["serversTransport"] == "erp-acme.transport"
    assert config["serversTransports"] == {"erp-acme.transport": {"forwardingTimeouts": {"dialTimeout": "500ms"}}}
    assert config["middlewares"] == {"erp-acme.retry": {"retry": {"attempts": 2}}}
    assert rendered.routed == ("acme.erp.test",) and rendered.unrouted == ()


def test_port_comes_from_the_catalog_and_path_joins_the_rule() -> None:
    rendered = render(spec({"a": {}, "b": {"route": {"path": "/api"}}}))
    config = http(rendered)
    assert config["routers"]["erp-acme.b"]["rule"] == "Host(`acme.erp.test`) && PathPrefix(`/api`)"
    assert config["routers"]["erp-acme.b"]["middlewares"] == ["erp-acme.b.strip", "erp-acme.retry"]
    assert config["middlewares"]["erp-acme.b.strip"] == {"stripPrefix": {"prefixes": ["/api"]}}
    assert config["routers"]["erp-acme.a"]["middlewares"] == ["erp-acme.retry"]
    balancer = config["services"]["erp-acme.b"]["loadBalancer"]
    assert balancer["servers"] == [{"url": "http://10.1.0.3:9090"}]
    assert balancer["healthCheck"]["path"] == "/ready"


def test_unexposed_services_and_other_tenants_backends_are_not_routed() -> None:
    tenant = spec({"a": {}, "b": {}})
    stranger = replace(backends(spec({"a": {}}, name="globex"))[0], ip="10.9.0.9")
    rendered = render(tenant, [*backends(tenant), stranger])
    assert list(http(rendered)["services"]) == ["erp-acme.a"]
    assert http(rendered)["services"]["erp-acme.a"]["loadBalancer"]["servers"] == [{"url": "http://10.1.0.2:8080"}]


def test_two_versions_become_a_weighted_service() -> None:
    tenant = spec(
        {
            "a": {
                "versions": [
                    {"image": "erp/demo-svc:1", "replicas": 2, "weight": 90},
                    {"image": "erp/demo-svc:2", "weight": 10},
                ]
            }
        }
    )
    config = http(render(tenant))
    assert config["routers"]["erp-acme.a"]["service"] == "erp-acme.a"
    assert config["services"]["erp-acme.a"] == {
        "weighted": {
            "services": [{"name": "erp-acme.a.a", "weight": 90}, {"name": "erp-acme.a.b", "weight": 10}],
            "healthCheck": {},
        }
    }
    assert len(config["services"]["erp-acme.a.a"]["loadBalancer"]["servers"]) == 2
    assert config["services"]["erp-acme.a.b"]["loadBalancer"]["servers"] == [{"url": "http://10.1.0.4:8080"}]
    # One router per version, pinned by the version header to that version's load balancer (the canary's checks).
    assert config["routers"]["erp-acme.a.b"] == {
        "rule": "Host(`acme.erp.test`) && Header(`X-Reconciler-Version`, `b`)",
        "entryPoints": ["web"],
        "service": "erp-acme.a.b",
        "middlewares": ["erp-acme.retry"],
    }
    assert config["routers"]["erp-acme.a.a"]["service"] == "erp-acme.a.a"
    assert "`X-Reconciler-Version`, `a`" in config["routers"]["erp-acme.a.a"]["rule"]


def test_a_version_without_backends_or_weight_leaves_the_split() -> None:
    tenant = spec(
        {"a": {"versions": [{"image": "erp/demo-svc:1", "weight": 0}, {"image": "erp/demo-svc:2", "weight": 1}]}}
    )
    config = http(render(tenant))
    assert config["services"]["erp-acme.a"] == {
        "weighted": {"services": [{"name": "erp-acme.a.b", "weight": 1}], "healthCheck": {}}
    }
    assert "erp-acme.a.a" not in config["services"]
    # A version out of the split (a canary backed out to weight 0) cannot be reached by its header either.
    assert set(config["routers"]) == {"erp-acme.a", "erp-acme.a.b"}
    # Only the zero-weight version has backends: nothing can serve.
    only_first = [c for c in backends(tenant) if c.track == ""]
    rendered = render(tenant, only_first)
    assert rendered.empty and rendered.unrouted == ("service a: no ready backend in a version with a positive weight",)


def test_no_ready_backend_means_no_router() -> None:
    rendered = render(spec({"a": {}, "b": {"route": {"path": "/b"}}}), [])
    assert rendered.config == {} and rendered.exposed
    assert rendered.unrouted == ("service a: no ready backend", "service b: no ready backend")
    partial = render(spec({"a": {}, "b": {"route": {"path": "/b"}}}), backends(spec({"a": {}})))
    assert list(http(partial)["routers"]) == ["erp-acme.a"]
    assert partial.unrouted == ("service b: no ready backend",)


def test_a_tenant_exposing_nothing_renders_an_empty_file() -> None:
    rendered = render(spec({"b": {}}))
    assert rendered.config == {} and not rendered.exposed and rendered.unrouted == ()


def test_allow_list_middleware_comes_before_retry() -> None:
    config = http(render(spec({"a": {"route": {"allow": ["127.0.0.1/32", "::1/128"]}}})))
    assert config["routers"]["erp-acme.a"]["middlewares"] == ["erp-acme.a.allow", "erp-acme.retry"]
    assert config["middlewares"]["erp-acme.a.allow"] == {"ipAllowList": {"sourceRange": ["127.0.0.1/32", "::1/128"]}}


def test_deny_list_becomes_the_complement() -> None:
    config = http(render(spec({"a": {"route": {"deny": ["127.0.0.2/32", "2001:db8::/32"]}}})))
    ranges = [ipaddress.ip_network(r) for r in config["middlewares"]["erp-acme.a.allow"]["ipAllowList"]["sourceRange"]]
    denied = [ipaddress.ip_network("127.0.0.2/32"), ipaddress.ip_network("2001:db8::/32")]
    assert not any(r.overlaps(d) for r in ranges for d in denied if r.version == d.version)
    assert sum(r.num_addresses for r in ranges if r.version == 4) == 2**32 - 1
    assert sum(r.num_addresses for r in ranges if r.version == 6) == 2**128 - 2**96
    assert any(ipaddress.ip_address("127.0.0.1") in r for r in ranges)
    assert not any(ipaddress.ip_address("127.0.0.2") in r for r in ranges)


def test_names_never_collide_across_tenants() -> None:
    one = render(spec({"a": {"versions": [{"image": "erp/demo-svc:1"}, {"image": "erp/demo-svc:2"}]}}, name="acme"))
    two = render(spec({"b": {"route": {}}}, name="acme-a"))
    names = lambda r: RouteTable.from_dynamic(r.config["http"]).names()  # noqa: E731
    assert not names(one) & names(two)
    assert all(n.startswith(NAMING.tenant_prefix("acme")) for n in names(one))
    assert not any(n.startswith(NAMING.tenant_prefix("acme")) for n in names(two))


def test_file_is_deterministic_and_marked_as_ours() -> None:
    tenant = spec({"a": {"replicas": 3, "route": {"deny": ["10.0.0.0/8"]}}})
    first = render_file(render(tenant), owner="ci-1")
    second = render_file(render(tenant, list(reversed(backends(tenant)))), owner="ci-1")
    assert first == second
    assert parse_file_header(first) == ("ci-1", "acme")
    assert yaml.safe_load(first) == render(tenant).config
    assert NAMING.tenant_of_file(NAMING.file("acme-a")) == "acme-a"
    assert NAMING.tenant_of_file("erpx-acme.yml") is None and NAMING.tenant_of_file("erp-.yml") is None


def test_rendered_table_verifies_against_a_matching_api_view() -> None:
    rendered = render(spec({"a": {"versions": [{"image": "erp/demo-svc:1"}, {"image": "erp/demo-svc:2"}]}}))
    # What Traefik's API says after loading the file: items keyed by name@file, server status per URL.
    api: dict[str, dict[str, Any]] = {"routers": {}, "services": {}, "middlewares": {}}
    for section, items in rendered.config["http"].items():
        if section not in api:
            continue  # servers transports are listed elsewhere in the API and not verified
        for name, item in items.items():
            entry = dict(item, status="enabled")
            if section == "routers":
                entry["middlewares"] = [f"{m}@file" for m in item["middlewares"]]
            if "loadBalancer" in item:
                entry["serverStatus"] = {s["url"]: "UP" for s in item["loadBalancer"]["servers"]}
            api[section][f"{name}@file"] = entry
    observed = RouteTable.from_dynamic(api)
    assert verify(rendered.table, observed).reason == "ServersUp"
    down = dict(api["services"]["erp-acme.a.b@file"], serverStatus={"http://10.1.0.3:8080": "DOWN"})
    api["services"]["erp-acme.a.b@file"] = down
    verdict = verify(rendered.table, RouteTable.from_dynamic(api))
    # Version a still serves: the route works with less capacity.
    assert (verdict.ready, verdict.reason, verdict.down) == (True, "SomeServersDown", ("http://10.1.0.3:8080",))
    api["services"]["erp-acme.a.a@file"] = dict(
        api["services"]["erp-acme.a.a@file"], serverStatus={"http://10.1.0.2:8080": "DOWN"}
    )
    verdict = verify(rendered.table, RouteTable.from_dynamic(api))
    assert (verdict.ready, verdict.reason, verdict.loaded) == (False, "ServerDown", True)
    assert set(verdict.down) == {"http://10.1.0.2:8080", "http://10.1.0.3:8080"}
    assert verify(rendered.table, RouteTable()).reason == "RouterMissing"
    assert verify(RouteTable(), observed).reason == "ConfigPending"


@pytest.mark.parametrize(
    "services",
    [
        {"a": {}},
        {"a": {"replicas": 0}},
        {"a": {"replicas": 5, "route": {"host": "shop.acme.erp.test", "path": "/x/y"}}},
        {
            "a": {"route": {"allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16", "fd00::/8"]}},
            "b": {"route": {"path": "/b"}},
        },
        {"a": {"versions": [{"image": "erp/demo-svc:1", "replicas": 0}, {"image": "erp/demo-svc:2", "replicas": 3}]}},
        {"b": {"route": {"deny": ["::/0"]}}},
        {
            "a": {
                "route": {"path": "/shop", "allow": ["10.0.0.0/8"]},
                "versions": [{"image": "erp/demo-svc:1"}, {"image": "erp/demo-svc:2"}],
            }
        },
    ],
)
def test_every_case_is_valid_traefik_configuration(services: dict[str, Any]) -> None:
    rendered = render(spec(services))
    found = _validator(spec_path(SCHEMA_FILE))
    assert found.is_valid(yaml.safe_load(render_file(rendered, owner="x")) or {})


def _maintenance(tenant: TenantSpec) -> RenderedRoutes:
    rendered = render_maintenance(tenant, "http://10.1.0.9:8080", naming=NAMING, entrypoint="web")
    found = validator()
    if found is not None and rendered.config:
        errors = sorted(found.iter_errors(rendered.config), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return rendered


def test_under_maintenance_every_route_goes_to_one_server_without_a_health_check() -> None:
    tenant = spec({"a": {"route": {"path": "/shop", "allow": ["127.0.0.1/32"]}}, "b": {"route": {}}})
    config = http(_maintenance(tenant))
    assert set(config["routers"]) == {"erp-acme.a", "erp-acme.b"}
    # Same rule, allow list first (a refused client stays refused), then every path to the one CGI script.
    assert config["routers"]["erp-acme.a"] == {
        "rule": "Host(`acme.erp.test`) && PathPrefix(`/shop`)",
        "entryPoints": ["web"],
        "service": "erp-acme.maintenance",
        "middlewares": ["erp-acme.a.allow", "erp-acme.maintenance.path"],
    }
    assert config["middlewares"]["erp-acme.maintenance.path"] == {
        "replacePathRegex": {"regex": "^.*$", "replacement": "/cgi-bin/maintenance"}
    }
    balancer = config["services"]["erp-acme.maintenance"]["loadBalancer"]
    assert balancer["servers"] == [{"url": "http://10.1.0.9:8080"}]
    assert "healthCheck" not in balancer  # a 503 to every probe would mark it DOWN
    assert set(config["services"]) == {"erp-acme.maintenance"}


def test_a_tenant_exposing_nothing_has_no_maintenance_file() -> None:
    assert _maintenance(spec({"b": {}})).empty

"""Bounds on desired-state values (``desired_state.bounds``): each one refused with a clear, short error that
names tenant and field and never shows an env value; the deny-list complement is fast and bounded."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest

from desired_state.bounds import MAX_CIDRS, MAX_ENV_TOTAL, MAX_ENV_VALUE, MAX_SHOWN_VALUE, InputLimits
from desired_state.networks import allowed_networks, count_allowed_networks
from desired_state.sizes import parse_memory
from desired_state.specs import SpecError, build_tenant, parse_catalog

CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1", "public": True}, "b": {"image": "erp/demo-svc:1"}})
SECRET = "hunter2-very-secret"


def error(services: dict[str, Any], limits: InputLimits | None = None, **tenant: Any) -> SpecError:
    raw = {"name": "acme", "domain": "acme.erp.test", "services": services, **tenant}
    with pytest.raises(SpecError) as caught:
        build_tenant(raw, CATALOG, limits=limits)
    assert caught.value.tenant == "acme"
    assert len(caught.value.shown) <= MAX_SHOWN_VALUE
    return caught.value


def test_a_400_digit_memory_is_an_error_not_an_overflow() -> None:
    problem = error({"a": {"memory": "9" * 400}})
    assert problem.field == "services.a.memory" and "digits" in problem.message
    assert problem.shown.endswith("…'") is False and problem.shown.endswith("…")


@pytest.mark.parametrize("size", ["1e999", "99999999999999999T", 2**80, float(2**70)])
def test_memory_beyond_any_host_is_refused(size: object) -> None:
    with pytest.raises(ValueError):
        parse_memory(size)


def test_memory_above_the_operator_limit_is_refused() -> None:
    limits = InputLimits(max_service_memory=1024**3)
    assert error({"a": {"memory": "2G"}}, limits).field == "services.a.memory"
    assert build_tenant(
        {"name": "acme", "domain": "acme.erp.test", "services": {"a": {"memory": "1G"}}}, CATALOG, limits=limits
    )


def test_cpus_above_the_operator_limit_and_nan_are_refused() -> None:
    assert error({"a": {"cpus": 3}}, InputLimits(max_service_cpus=2)).field == "services.a.cpus"
    assert error({"a": {"cpus": float("nan")}}).field == "services.a.cpus"
    assert error({"a": {"cpus": "inf"}}).field == "services.a.cpus"


@pytest.mark.parametrize("replicas", [21, -1, 2**70, "1e3"])
def test_replicas_are_bounded(replicas: object) -> None:
    assert error({"a": {"replicas": replicas}}).field == "services.a.replicas"


def test_a_nul_byte_in_an_env_value_is_refused_without_showing_the_value() -> None:
    problem = error({"a": {"env": {"DB_PASSWORD": SECRET + "\x00x"}}})
    assert problem.field == "services.a.env" and "NUL" in problem.message
    assert SECRET not in str(problem)


def test_a_bad_env_key_beside_a_password_names_the_key_only() -> None:
    problem = error({"a": {"env": {"DB_PASSWORD": SECRET, "1BAD": "x"}}})
    assert "'1BAD'" in problem.message and SECRET not in str(problem)
    assert problem.value == ["1BAD", "DB_PASSWORD"]


@pytest.mark.parametrize(
    "env",
    [
        {"BIG": "x" * (MAX_ENV_VALUE + 1)},
        {f"V{i}": "x" * (MAX_ENV_VALUE - 10) for i in range(MAX_ENV_TOTAL // MAX_ENV_VALUE + 1)},
        {"K" * 200: "v"},
        {f"V{i}": "" for i in range(300)},
        ["DB_PASSWORD", SECRET],
    ],
)
def test_env_sizes_and_types_are_bounded(env: object) -> None:
    problem = error({"a": {"env": env}})
    assert problem.field == "services.a.env" and SECRET not in str(problem)


def test_a_1000_entry_deny_list_is_refused_quickly() -> None:
    deny = [f"2001:db8:{i:x}::1" for i in range(1000)]
    started = time.perf_counter()
    problem = error({"a": {"route": {"deny": deny}}})
    assert time.perf_counter() - started < 1.0
    assert problem.field == "services.a.route.deny" and f"at most {MAX_CIDRS}" in problem.message


def test_a_deny_list_whose_complement_is_too_long_is_refused_quickly() -> None:
    deny = [f"2001:db8:{i:x}::1" for i in range(400)]  # 400 scattered /128s: about 50 000 allowed ranges
    started = time.perf_counter()
    problem = error({"a": {"route": {"deny": deny}}})
    assert time.perf_counter() - started < 1.0
    assert "compiles to more than 4096 allowed ranges" in problem.message


def test_the_complement_matches_ipaddress_arithmetic() -> None:
    deny = ("10.0.0.0/8", "10.1.0.0/16", "192.168.1.7/32", "2001:db8::/32", "2001:db8::1/128")
    got = allowed_networks((), deny)
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    for network in map(ipaddress.ip_network, deny):
        everything = [part for whole in everything for part in _exclude(whole, network)]
    assert got == sorted(ipaddress.collapse_addresses(n for n in everything if n.version == 4)) + sorted(
        ipaddress.collapse_addresses(n for n in everything if n.version == 6)
    )


def _exclude(whole: Any, network: Any) -> list[Any]:
    if whole.version != network.version or not whole.overlaps(network):
        return [whole]
    return [] if network.supernet_of(whole) else list(whole.address_exclude(network))


@pytest.mark.parametrize(
    ("services", "field"),
    [
        ({"a": {"route": {"path": "/a/../b"}}}, "services.a.route.path"),
        ({"a": {"route": {"path": "/" + "p" * 300}}}, "services.a.route.path"),
        ({"a": {"route": {"host": "a" * 300 + ".erp.test"}}}, "services.a.route.host"),
        ({"a": {"image": "erp/" + "x" * 300}}, "services.a.image"),
        ({"a": {"versions": [{"image": f"erp/v:{i}"} for i in range(3)]}}, "services.a.versions"),
        ({"a": {"route": {"deny": "10.0.0.0/8"}}}, "services.a.route.deny"),
        ({"a": {"route": {"allow": [{"x": 1}]}}}, "services.a.route.allow"),
    ],
)
def test_paths_names_and_lists_are_bounded(services: dict[str, Any], field: str) -> None:
    assert error(services).field == field


def test_catalog_values_are_bounded() -> None:
    with pytest.raises(SpecError, match="migrate"):
        parse_catalog({"c": {"image": "erp/x:1", "migrate": ["/bin/x\x00"]}})
    with pytest.raises(SpecError, match="health"):
        parse_catalog({"c": {"image": "erp/x:1", "health": "/h\x00"}})


def test_error_values_are_shortened_with_an_ellipsis() -> None:
    problem = error({}, domain="x" * 500)
    assert problem.field == "domain" and len(problem.shown) == MAX_SHOWN_VALUE and problem.shown.endswith("…")
    assert len(str(problem)) < 300


def test_settings_give_the_loader_its_limits() -> None:
    from reconciler.runtime.settings import Settings

    limits = Settings(max_service_memory="2G", max_service_cpus=1.5, max_allowed_ranges=10).input_limits()
    assert limits == InputLimits(max_service_memory=2 * 1024**3, max_service_cpus=1.5, max_allowed_ranges=10)
    with pytest.raises(ValueError):
        Settings(max_service_memory="9" * 400)


def test_the_allowed_range_count_of_a_shared_list_is_computed_once_per_load() -> None:
    deny = ("10.20.0.0/16", "192.168.7.0/24")
    count_allowed_networks.cache_clear()
    counts = {count_allowed_networks((), deny, 64) for _ in range(200)}
    assert counts == {len(allowed_networks((), deny))}
    assert count_allowed_networks.cache_info().misses == 1

"""Validation of desired state in ``desired_state.specs``: what is accepted, and what the errors say."""

from __future__ import annotations

from typing import Any

import pytest

from desired_state.inputs import CatalogEntry
from desired_state.sizes import format_memory, parse_memory
from desired_state.specs import SpecError, TenantSpec, build_tenant, parse_catalog

MiB = 1024**2

CATALOG = parse_catalog(
    {
        "a": {
            "image": "erp/demo-svc:1",
            "port": 8080,
            "health": "/health",
            "memory": "64M",
            "cpus": 0.25,
            "public": True,
        },
        "b": {"image": "erp/demo-svc:1", "migrate": ["/bin/erp-migrate"]},
    }
)


def tenant(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": "acme", "domain": "acme.erp.test", "state": "running", "services": {"a": {}}}
    raw.update(overrides)
    return raw


def spec_error(raw: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        build_tenant(raw, CATALOG)
    return caught.value


# ------------------------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64M", 64 * MiB),
        ("64m", 64 * MiB),
        ("1g", 1024 * MiB),
        ("1G", 1024 * MiB),
        ("512MiB", 512 * MiB),
        ("512mb", 512 * MiB),
        ("1.5G", 1536 * MiB),
        ("65536k", 64 * MiB),
        (" 64M ", 64 * MiB),
        (8 * MiB, 8 * MiB),
        (float(8 * MiB), 8 * MiB),
        (str(8 * MiB), 8 * MiB),
    ],
)
def test_memory_sizes_are_parsed(text: object, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "", "64 X", "-64M", "64MBB", True, None, [64], 1.5])
def test_memory_that_is_not_a_size_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_memory(text)


@pytest.mark.parametrize("text", ["5M", "1k", 0, "6000K"])
def test_memory_below_dockers_minimum_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="6M minimum"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("size", "text"), [(64 * MiB, "64M"), (2 * 1024 * MiB, "2G"), (1536 * MiB, "1536M"), (6145 * 1024, "6145K")]
)
def test_memory_is_formatted_in_the_largest_exact_unit(size: int, text: str) -> None:
    assert format_memory(size) == text
    assert parse_memory(text) == size


def test_memory_not_a_multiple_of_a_kibibyte_is_formatted_as_bytes() -> None:
    assert format_memory(6 * MiB + 1) == str(6 * MiB + 1)


# ------------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("name", ["ab", "acme", "acme-corp", "a1", "x" * 40, "tenant-42"])
def test_valid_tenant_names(name: str) -> None:
    assert build_tenant(tenant(name=name), CATALOG).name == name


@pytest.mark.parametrize(
    "name", ["Bad_Name!", "Acme", "a", "1acme", "acme-", "-acme", "ac me", "acme_corp", "x" * 41, "acme.corp", ""]
)
def test_invalid_tenant_names_name_the_field_and_value(name: str) -> None:
    error = spec_error(tenant(name=name))
    assert (error.tenant, error.field, error.value) == (name, "name", name)
    assert "DNS-safe slug" in error.message
    assert repr(name) in str(error)


def test_catalog_service_names_must_be_lowercase_words() -> None:
    with pytest.raises(SpecError) as caught:
        parse_catalog({"Billing": {"image": "erp/demo-svc:1"}})
    assert (caught.value.tenant, caught.value.field, caught.value.value) == ("(catalog)", "name", "Billing")


# ---------------------------------------------------------------------------------------------- domains


@pytest.mark.parametrize(
    ("domain", "normalised"),
    [
        ("acme.erp.test", "acme.erp.test"),
        ("ACME.ERP.Test", "acme.erp.test"),
        ("acme.erp.test.", "acme.erp.test"),
        ("a-1.b.example", "a-1.b.example"),
        ("xn--mgba3a4f16a.ir", "xn--mgba3a4f16a.ir"),
    ],
)
def test_domains_are_normalised(domain: str, normalised: str) -> None:
    assert build_tenant(tenant(domain=domain), CATALOG).domain == normalised


@pytest.mark.parametrize(
    "domain",
    [
        "localhost",
        "acme..test",
        "-acme.test",
        "acme-.test",
        "acme test.com",
        "acme_corp.test",
        "",
        "a." + "b" * 64 + ".c",
    ],
)
def test_invalid_domains_are_refused(domain: str) -> None:
    error = spec_error(tenant(domain=domain))
    assert (error.field, error.value) == ("domain", domain)
    assert "DNS name" in error.message


def test_domain_longer_than_253_characters_is_refused() -> None:
    domain = ".".join(["a" * 60] * 5)
    assert spec_error(tenant(domain=domain)).field == "domain"


# ------------------------------------------------------------------------------------------------- state


@pytest.mark.parametrize("state", ["running", "stopped", "absent"])
def test_states(state: str) -> None:
    assert build_tenant(tenant(state=state), CATALOG).state == state


def test_unknown_state_is_refused_with_the_accepted_values() -> None:
    error = spec_error(tenant(state="paused"))
    assert (error.field, error.value) == ("state", "paused")
    assert "'running'" in error.message and "'absent'" in error.message


# ---------------------------------------------------------------------------------------------- services


def test_defaults_come_from_the_catalog_and_overrides_win() -> None:
    spec = build_tenant(
        tenant(services={"a": {"replicas": 2}, "b": {"image": "erp/demo-svc:2", "memory": "32M", "cpus": 0.1}}),
        CATALOG,
    )
    assert isinstance(spec, TenantSpec)
    a, b = spec.service("a"), spec.service("b")
    assert a is not None and b is not None
    assert (a.image, a.replicas, a.memory, a.cpus, a.port, a.health, a.public) == (
        "erp/demo-svc:1",
        2,
        64 * MiB,
        0.25,
        8080,
        "/health",
        True,
    )
    assert (b.image, b.replicas, b.memory, b.cpus, b.migrate, b.public) == (
        "erp/demo-svc:2",
        1,
        32 * MiB,
        0.1,
        ("/bin/erp-migrate",),
        False,
    )
    assert [s.name for s in spec.services] == ["a", "b"]


def test_catalog_defaults_apply_when_fields_are_missing() -> None:
    entry = parse_catalog({"c": {"image": "erp/demo-svc:1"}})["c"]
    assert entry == CatalogEntry(name="c", image="erp/demo-svc:1")
    assert (entry.port, entry.health, entry.memory, entry.cpus, entry.migrate, entry.public) == (
        8080,
        "/health",
        128 * MiB,
        0.5,
        None,
        False,
    )


def test_unknown_service_names_the_known_ones() -> None:
    error = spec_error(tenant(services={"a": {}, "zz": {}}))
    assert (error.tenant, error.field, error.value) == ("acme", "services.zz", "zz")
    assert error.message == "is not in the service catalog (known: a, b)"


def test_unknown_service_with_an_empty_catalog() -> None:
    with pytest.raises(SpecError, match=r"known: none"):
        build_tenant(tenant(), {})


@pytest.mark.parametrize("replicas", [0, 1, 20])
def test_replicas_in_range(replicas: int) -> None:
    service = build_tenant(tenant(services={"a": {"replicas": replicas}}), CATALOG).service("a")
    assert service is not None and service.replicas == replicas


@pytest.mark.parametrize("replicas", [-1, 21, "two", 1.5])
def test_replicas_out_of_range_name_field_and_value(replicas: object) -> None:
    error = spec_error(tenant(services={"a": {"replicas": replicas}}))
    assert (error.tenant, error.field, error.value) == ("acme", "services.a.replicas", replicas)
    assert str(error).startswith(f"tenant 'acme': services.a.replicas = {replicas!r}: ")


def test_memory_override_that_is_not_a_size() -> None:
    error = spec_error(tenant(services={"a": {"memory": "lots"}}))
    assert (error.field, error.value) == ("services.a.memory", "lots")
    assert "e.g. 64M" in error.message


@pytest.mark.parametrize("cpus", [0, -0.5, 65, "many"])
def test_cpus_out_of_range(cpus: object) -> None:
    assert spec_error(tenant(services={"a": {"cpus": cpus}})).field == "services.a.cpus"


@pytest.mark.parametrize("image", ["erp/demo svc:1", "ERP/demo:1", "erp/demo-svc:1; rm -rf /", ""])
def test_invalid_images(image: str) -> None:
    error = spec_error(tenant(services={"a": {"image": image}}))
    assert (error.field, error.value) == ("services.a.image", image)


def test_unknown_override_field_is_refused() -> None:
    error = spec_error(tenant(services={"a": {"replica": 2}}))
    assert error.field == "services.a.replica"
    assert "Extra inputs are not permitted" in error.message


def test_several_problems_are_reported_together() -> None:
    error = spec_error(tenant(domain="localhost", services={"a": {"replicas": -1}}))
    assert error.field == "domain"
    assert "also: services.a.replicas" in error.message


# --------------------------------------------------------------------------------------------------- env


def test_env_values_become_strings_and_are_sorted() -> None:
    service = build_tenant(
        tenant(services={"a": {"env": {"ERP_LOCALE": "fa_IR", "ERP_DEBUG": True, "ERP_WORKERS": 4, "EMPTY": None}}}),
        CATALOG,
    ).service("a")
    assert service is not None
    assert service.env == (("EMPTY", ""), ("ERP_DEBUG", "True"), ("ERP_LOCALE", "fa_IR"), ("ERP_WORKERS", "4"))


def test_env_null_means_none() -> None:
    service = build_tenant(tenant(services={"a": {"env": None}}), CATALOG).service("a")
    assert service is not None and service.env == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"1BAD": "x"}, "variable name '1BAD' is not a valid environment variable name"),
        ({"ERP-LOCALE": "x"}, "variable name 'ERP-LOCALE'"),
        ({"ERP_NESTED": {"a": 1}}, "value of ERP_NESTED must be a string"),
        ({"ERP_LIST": [1]}, "value of ERP_LIST must be a string"),
        (["ERP_LOCALE=fa_IR"], "must be a mapping"),
        ("ERP_LOCALE=fa_IR", "must be a mapping"),
    ],
)
def test_invalid_env(env: object, message: str) -> None:
    error = spec_error(tenant(services={"a": {"env": env}}))
    assert error.field == "services.a.env"
    assert message in error.message


# ----------------------------------------------------------------------------------------------- catalog


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"image": "erp/demo-svc:1", "port": 0}, "port"),
        ({"image": "erp/demo-svc:1", "port": 70000}, "port"),
        ({"image": "erp/demo-svc:1", "health": "health"}, "health"),
        ({"image": "erp/demo-svc:1", "health": "/he alth"}, "health"),
        ({"image": "erp/demo-svc:1", "memory": "lots"}, "memory"),
        ({"image": "erp/demo-svc:1", "migrate": "/bin/erp-migrate"}, "migrate"),
        ({"image": "erp/demo-svc:1", "public": "maybe"}, "public"),
        ({"image": "erp/demo-svc:1", "replicas": 2}, "replicas"),
        ({"port": 8080}, "image"),
    ],
)
def test_invalid_catalog_entries_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_catalog({"a": fields})
    assert (caught.value.tenant, caught.value.field) == ("(catalog)", field)


def test_spec_error_text_names_tenant_field_value_and_fix() -> None:
    error = SpecError("acme", "services.a.replicas", -1, "must be between 0 and 20")
    assert str(error) == "tenant 'acme': services.a.replicas = -1: must be between 0 and 20"
    assert isinstance(error, ValueError)


def test_specs_are_frozen() -> None:
    spec = build_tenant(tenant(), CATALOG)
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]

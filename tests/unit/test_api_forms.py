"""Pure parts of the API and console: JSON merge patch (RFC 7396), If-Match parsing, the console's edit form
applied to a stored document, and what a viewer sees of env values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from desired_state.access import Account, hash_password, password_matches
from reconciler.api.console.forms import edited_document, new_document
from reconciler.api.tenants import expected_generation, merge_patch
from reconciler.api.views import shown_document

STORED = {
    "name": "acme",
    "domain": "acme.erp.test",
    "state": "running",
    "services": {
        "a": {"replicas": 1, "env": {"DB_PASSWORD": "hunter2"}},
        "b": {"versions": [{"image": "erp/demo-svc:1", "weight": 90}, {"image": "erp/demo-svc:2", "weight": 10}]},
    },
}


def _account(role: str) -> Account:
    return Account(1, "x", role, "en", False, datetime.now(UTC), None, None)  # type: ignore[arg-type]


def test_merge_patch_merges_objects_replaces_the_rest_and_null_removes() -> None:
    patched = merge_patch(STORED, {"state": "stopped", "services": {"a": {"replicas": 3, "env": None}, "b": None}})
    assert patched == {
        "name": "acme",
        "domain": "acme.erp.test",
        "state": "stopped",
        "services": {"a": {"replicas": 3}},
    }
    assert STORED["services"]["a"]["replicas"] == 1  # the stored document is not changed


@pytest.mark.parametrize(("header", "expected"), [(None, None), ("*", None), ('"7"', 7), ('W/"12"', 12), ("3", 3)])
def test_if_match_is_a_generation(header: str | None, expected: int | None) -> None:
    assert expected_generation(header) == expected


@pytest.mark.parametrize("header", ['"abc"', '"99999999999999999999"', "7, 8"])
def test_a_malformed_if_match_is_a_400(header: str) -> None:
    with pytest.raises(HTTPException) as raised:
        expected_generation(header)
    assert raised.value.status_code == 400


def test_the_edit_form_changes_only_what_it_holds() -> None:
    form = {
        "state": "stopped",
        "replicas-a": "2",
        "weight-b-0": "50",
        "weight-b-1": "50",
        "allow-a": "10.0.0.0/8\n192.0.2.0/24",
        "deny-a": "",
    }
    edited = edited_document(STORED, form)
    assert edited["state"] == "stopped"
    assert edited["services"]["a"] == {
        "replicas": 2,
        "env": {"DB_PASSWORD": "hunter2"},
        "route": {"allow": ["10.0.0.0/8", "192.0.2.0/24"], "deny": []},
    }
    assert [v["weight"] for v in edited["services"]["b"]["versions"]] == [50, 50]
    assert "route" not in edited["services"]["b"]  # no list given and none stored: no route made
    assert edited_document(STORED, {"replicas-a": "two"})["services"]["a"]["replicas"] == "two"  # the loader names it


def test_the_new_tenant_form() -> None:
    assert new_document({"name": " shop ", "domain": "shop.erp.test", "services": "a, b", "replicas": "2"}) == {
        "name": "shop",
        "domain": "shop.erp.test",
        "state": "running",
        "services": {"a": {"replicas": 2}, "b": {"replicas": 2}},
    }


def test_a_viewer_sees_env_names_never_values() -> None:
    assert shown_document(STORED, _account("viewer"))["services"]["a"]["env"] == {"DB_PASSWORD": "<hidden>"}
    assert shown_document(STORED, _account("operator"))["services"]["a"]["env"] == {"DB_PASSWORD": "hunter2"}


def test_passwords_are_salted_and_checked() -> None:
    first, second = hash_password("correct horse", iterations=1000), hash_password("correct horse", iterations=1000)
    assert first != second and "correct horse" not in first
    assert password_matches("correct horse", first) and not password_matches("wrong horse", first)
    assert not password_matches("x", "garbage")

"""Checks (smoke tests): the pure judgement of an answer (``core.checks``) and the validation of declared checks
(``desired_state.check_inputs`` through ``build_tenant``): hostile input is a clear error naming tenant, field and a
shortened value, never an exception of another kind; valid input resolves tenant over catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desired_state.bounds import MAX_SHOWN_VALUE
from desired_state.check_inputs import MAX_CHECKS
from desired_state.specs import SpecError, build_tenant, parse_catalog
from reconciler.core.checks import (
    BODY_EXCERPT,
    MAX_DETAIL,
    Check,
    CheckResult,
    Response,
    evaluate,
    json_lookup,
    newly_failing,
    summary,
)

HOME = Check(name="home", path="/", body_contains="version=1")
CATALOG = parse_catalog(
    {
        "a": {"image": "erp/demo-svc:1", "public": True, "checks": [{"name": "home", "path": "/"}]},
        "b": {"image": "erp/demo-svc:1"},
    }
)


def tenant(services: dict[str, Any]) -> Any:
    return build_tenant({"name": "acme", "domain": "acme.erp.test", "services": services}, CATALOG)


def error(services: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        tenant(services)
    assert caught.value.tenant == "acme"
    assert len(caught.value.shown) <= MAX_SHOWN_VALUE
    return caught.value


# --- evaluate ------------------------------------------------------------------------------------------------------


def test_a_body_substring_passes_on_v1_and_fails_on_v2_with_an_excerpt() -> None:
    assert evaluate(HOME, Response(200, b"tenant=acme service=a version=1 replica=0")) == ("passed", "status 200")
    outcome, detail = evaluate(HOME, Response(200, b"tenant=acme service=a version=2 replica=0"))
    assert outcome == "failed"
    assert detail.startswith("body does not contain 'version=1'") and "version=2" in detail


def test_the_status_decides_first_and_no_answer_is_a_failure() -> None:
    assert evaluate(HOME, Response(503, b"down")) == ("failed", "status 503, expected 200 ('down')")
    assert evaluate(HOME, Response(None, error="no answer within 5 s")) == ("failed", "no answer: no answer within 5 s")
    redirect = Check(name="login", path="/login", status=302)
    assert evaluate(redirect, Response(302)) == ("passed", "status 302")


@pytest.mark.parametrize(
    ("body", "field", "expected", "outcome"),
    [
        ({"status": "ok"}, "status", "ok", "passed"),
        ({"status": "degraded"}, "status", "ok", "failed"),
        ({"data": {"items": [{"state": "up"}]}}, "data.items.0.state", "up", "passed"),
        ({"count": 1.0}, "count", 1, "passed"),
        ({"ready": 1}, "ready", True, "failed"),  # JSON true is not 1
        ({"ready": True}, "ready", True, "passed"),
        ({"other": 1}, "status", "ok", "failed"),
    ],
)
def test_json_fields_compare_by_json_value(body: Any, field: str, expected: Any, outcome: str) -> None:
    check = Check(name="api", path="/api", json_path=field, json_value=expected)
    assert evaluate(check, Response(200, json.dumps(body).encode()))[0] == outcome


def test_a_body_that_is_not_json_fails_the_json_check() -> None:
    check = Check(name="api", path="/api", json_path="status", json_value="ok")
    outcome, detail = evaluate(check, Response(200, b"<html>oops</html>"))
    assert outcome == "failed" and detail.startswith("body is not JSON")


def test_json_lookup_walks_objects_and_list_indexes() -> None:
    assert json_lookup({"a": [{"b": 2}]}, "a.0.b") == (True, 2)
    assert json_lookup({"a": [1]}, "a.5") == (False, None)
    assert json_lookup([1, 2], "x") == (False, None)


@settings(max_examples=200, deadline=None)
@given(status=st.one_of(st.none(), st.integers(100, 599)), body=st.binary(max_size=4096))
def test_evaluate_always_judges_and_its_detail_is_bounded(status: int | None, body: bytes) -> None:
    check = Check(name="x", path="/", body_contains="ok", json_path="a.b", json_value="c")
    outcome, detail = evaluate(check, Response(status, body, error=None if status else "refused"))
    assert outcome in ("passed", "failed")
    assert len(detail) <= MAX_DETAIL
    # The body is quoted as an excerpt at most, never whole.
    assert len(body) <= BODY_EXCERPT or body.decode("utf-8", "replace") not in detail


def result(check: str, outcome: str, image: str = "erp/demo-svc:2") -> CheckResult:
    return CheckResult(
        "acme", "a", check, image, outcome, 0.01, "status 200" if outcome == "passed" else "x", "schedule"
    )  # type: ignore[arg-type]


def test_newly_failing_is_only_what_was_not_failing_before() -> None:
    results = [result("home", "failed"), result("api", "failed"), result("health", "passed")]
    assert [r.check for r in newly_failing([("a", "home")], results)] == ["api"]
    assert newly_failing([("a", "home"), ("a", "api")], results) == []


def test_summary_gives_the_count_and_the_figures() -> None:
    text = summary([result("home", "failed"), result("health", "passed")])
    assert text.startswith("1 of 2 checks failed: a/home failed on erp/demo-svc:2 in 0.010 s")
    assert summary([result("health", "passed")]) == "1 checks passed"


# --- declared checks -----------------------------------------------------------------------------------------------


def test_a_tenant_inherits_the_catalog_checks_or_replaces_them() -> None:
    assert [c.name for c in tenant({"a": {}}).services[0].checks] == ["home"]
    own = tenant({"a": {"checks": [{"name": "api", "path": "/api?x=1", "json_path": "ok", "json_value": True}]}})
    assert [(c.name, c.json_value) for c in own.services[0].checks] == [("api", True)]
    assert tenant({"a": {"checks": []}}).services[0].checks == ()


def test_checks_are_not_part_of_the_spec_digest() -> None:
    with_checks, without = tenant({"a": {}}), tenant({"a": {"checks": []}})
    assert with_checks.model_dump(mode="json") == without.model_dump(mode="json")


@pytest.mark.parametrize(
    ("checks", "field", "words"),
    [
        ("home", "services.a.checks", "must be a list of checks"),
        ([{"name": "Home!", "path": "/"}], "services.a.checks.0.name", "lowercase"),
        ([{"name": "h", "path": "no-slash"}], "services.a.checks.0.path", "starting with /"),
        ([{"name": "h", "path": "/a b"}], "services.a.checks.0.path", "no spaces"),
        ([{"name": "h", "path": "/" + "x" * 400}], "services.a.checks.0.path", "at most 255"),
        ([{"name": "h", "path": "/", "method": "DELETE"}], "services.a.checks.0.method", "GET"),
        ([{"name": "h", "path": "/", "status": 700}], "services.a.checks.0.status", "599"),
        ([{"name": "h", "path": "/", "status": "200"}], "services.a.checks.0.status", "integer"),
        ([{"name": "h", "path": "/", "timeout": 0}], "services.a.checks.0.timeout", "0.1"),
        ([{"name": "h", "path": "/", "timeout": float("inf")}], "services.a.checks.0.timeout", ""),
        ([{"name": "h", "path": "/", "body_contains": "x" * 300}], "services.a.checks.0.body_contains", "256"),
        ([{"name": "h", "path": "/", "json_path": "a..b"}], "services.a.checks.0.json_path", "dotted"),
        ([{"name": "h", "path": "/", "json_value": 1}], "services.a.checks.0", "needs json_path"),
        ([{"name": "h", "path": "/", "method": "HEAD", "body_contains": "x"}], "services.a.checks.0", "HEAD"),
        ([{"name": "h", "path": "/", "shell": "rm -rf /"}], "services.a.checks.0.shell", "Extra inputs"),
        ([{"name": "h", "path": "/"}, {"name": "h", "path": "/x"}], "services.a.checks", "twice"),
        ([{"name": f"c{i}", "path": "/"} for i in range(MAX_CHECKS + 1)], "services.a.checks", f"at most {MAX_CHECKS}"),
    ],
)
def test_hostile_checks_are_refused_with_tenant_field_and_value(checks: Any, field: str, words: str) -> None:
    problem = error({"a": {"checks": checks}})
    assert problem.field == field, problem
    assert words in problem.message, problem


def test_checks_need_a_route_and_must_lie_under_its_path() -> None:
    problem = error({"b": {"checks": [{"name": "h", "path": "/"}]}})
    assert problem.field == "services.b.checks" and "has none" in problem.message
    problem = error({"a": {"route": {"path": "/api"}, "checks": [{"name": "h", "path": "/apix"}]}})
    assert problem.field == "services.a.checks.0.path" and "/api" in problem.message
    ok = tenant({"a": {"route": {"path": "/api"}, "checks": [{"name": "h", "path": "/api/health"}]}})
    assert ok.services[0].checks[0].path == "/api/health"


def test_an_inherited_check_that_cannot_work_names_the_catalog_field() -> None:
    catalog = parse_catalog({"b": {"image": "erp/demo-svc:1", "checks": [{"name": "h", "path": "/"}]}})
    with pytest.raises(SpecError) as caught:
        build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"b": {}}}, catalog)
    assert caught.value.field == "catalog.b.checks"


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=300)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)
check_objects = st.dictionaries(
    st.sampled_from(["name", "path", "method", "status", "body_contains", "json_path", "json_value", "timeout", "x"]),
    json_values,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(checks=st.one_of(json_values, st.lists(check_objects, max_size=12)))
def test_any_json_in_the_checks_column_is_a_spec_or_a_spec_error(checks: Any) -> None:
    try:
        spec = tenant({"a": {"checks": checks}})
    except SpecError as problem:
        assert problem.tenant == "acme" and problem.field.startswith("services.a.checks")
        assert len(problem.shown) <= MAX_SHOWN_VALUE
        return
    for check in spec.services[0].checks:
        assert check.path.startswith("/") and 0.1 <= check.timeout <= 30 and 100 <= check.status <= 599

"""The canary's own checks: what they do to a window's verdict (``core.canary_checks``) and how the analysis's
checker sends them (``runtime.operations.canary_checks``: the version header, the route's host), with a fake
``send`` standing in for Traefik (the real one: tests/integration/test_canary_checks.py)."""

from __future__ import annotations

from collections.abc import Mapping

from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.canary import Verdict, WindowFigures
from reconciler.core.canary_checks import with_checks
from reconciler.core.checks import Check, CheckResult, Response
from reconciler.runtime.operations.canary_checks import CanaryChecker

FIGURES = WindowFigures(100, 0, 30.0, 0.004)
HEALTHY = Verdict("healthy", FIGURES.describe(), FIGURES)


def result(check: str, outcome: str = "passed", detail: str = "status 200") -> CheckResult:
    return CheckResult("acme", "a", check, "erp/demo-svc:2", outcome, 0.01, detail, "canary")  # type: ignore[arg-type]


def test_a_failing_check_on_the_canary_fails_a_healthy_window_with_the_check_and_the_figures() -> None:
    bad = result("home", "failed", "body does not contain 'version=1' ('tenant=acme ... version=2')")
    verdict = with_checks(HEALTHY, [result("health"), bad])
    assert verdict.outcome == "failing" and verdict.figures == FIGURES
    assert verdict.reason.startswith("check a/home failed on erp/demo-svc:2 in 0.010 s: body does not contain")
    assert verdict.reason.endswith("; error rate 0.0% (0 of 100 requests) over 30 s, mean latency 4 ms")


def test_a_failing_check_backs_out_even_a_window_with_too_few_requests() -> None:
    few = Verdict("inconclusive", "too few requests to judge: 3 < 20 over 30 s", WindowFigures(3, 0, 30.0))
    assert with_checks(few, [result("home", "failed", "status 500, expected 200")]).outcome == "failing"
    assert with_checks(Verdict("inconclusive", "no metrics"), [result("home", "failed")]).outcome == "failing"


def test_passing_checks_never_promote_alone_and_are_said() -> None:
    few = Verdict("inconclusive", "too few requests to judge", None)
    assert with_checks(few, [result("home")]) == Verdict(
        "inconclusive", "too few requests to judge; 1 check passed on the canary"
    )
    healthy = with_checks(HEALTHY, [result("home"), result("health")])
    assert healthy.outcome == "healthy" and healthy.reason.endswith("; 2 checks passed on the canary")


def test_no_checks_or_an_already_failing_window_are_unchanged() -> None:
    assert with_checks(HEALTHY, []) == HEALTHY
    failing = Verdict("failing", "error rate 50.0%", FIGURES)
    assert with_checks(failing, [result("home", "failed")]) == failing


def test_many_failures_are_cut_to_two_and_counted() -> None:
    bad = [result(f"c{n}", "failed", "status 500, expected 200") for n in range(5)]
    reason = with_checks(HEALTHY, bad).reason
    assert reason.count("check a/") == 2 and "(and 3 more)" in reason


CATALOG = parse_catalog(
    {
        "a": {
            "image": "erp/demo-svc:1",
            "public": True,
            "checks": [{"name": "home", "path": "/", "body_contains": "version=1"}],
        },
        "plain": {"image": "erp/demo-svc:1", "public": True},
    }
)


def test_the_checker_sends_each_check_through_the_route_host_with_the_version_header() -> None:
    spec = build_tenant(
        {
            "name": "acme",
            "domain": "acme.erp.test",
            "services": {
                "a": {"versions": [{"image": "erp/demo-svc:1"}, {"image": "erp/demo-svc:2"}]},
                "plain": {"route": {"path": "/plain"}},
            },
        },
        CATALOG,
    )
    sent: list[tuple[str, str, str, dict[str, str]]] = []

    def send(base: str, host: str, check: Check, extra: Mapping[str, str]) -> Response:
        sent.append((base, host, check.path, dict(extra)))
        version = "1" if extra.get("X-Reconciler-Version") == "a" else "2"
        return Response(200, f"tenant=acme version={version}".encode())

    checker = CanaryChecker("http://127.0.0.1:8000", send=send)
    service = spec.service("a")
    assert service is not None
    [canary] = checker.run("acme", service, "b", "erp/demo-svc:2")
    assert sent == [("http://127.0.0.1:8000", "acme.erp.test", "/", {"X-Reconciler-Version": "b"})]
    assert (canary.outcome, canary.image, canary.trigger) == ("failed", "erp/demo-svc:2", "canary")
    [stable] = checker.run("acme", service, "", "erp/demo-svc:1")
    assert stable.outcome == "passed" and sent[-1][3] == {"X-Reconciler-Version": "a"}
    plain = spec.service("plain")
    assert plain is not None and checker.run("acme", plain, "b", "erp/demo-svc:2") == []  # no check declared

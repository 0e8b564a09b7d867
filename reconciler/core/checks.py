"""Checks (smoke tests) as plain values, and the judgement of one response (pure).

A *check* is an HTTP request a tenant service must answer as expected through its real route (Traefik's web
entrypoint with the route's host): method, path, expected status, optionally a body substring or a JSON field's
value, and a timeout. The specs (``desired_state.check_inputs``) validate them into ``Check``; the runtime
(``runtime.checks``) sends the request and hands what came back to ``evaluate``, which decides without I/O;
``runtime.checks`` records the ``CheckResult`` (``tenant_checks``), counts it and turns failures into a
condition, an alert and, after an upgrade, the upgrade's failure (so the old version keeps serving, pinned).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["passed", "failed"]
JsonScalar = str | int | float | bool | None

# Characters of a response body a failed check quotes in its detail: enough to recognise the page, never a dump.
BODY_EXCERPT = 80
# The whole detail of a result (stored, shown, alerted) is cut to this many characters.
MAX_DETAIL = 300
# Bytes of a response body read at most: a check judges a smoke-test answer, not a download.
MAX_BODY_BYTES = 64 * 1024
# Why a check ran; stored in ``tenant_checks.trigger``.
TRIGGERS = ("rollout", "upgrade", "rollback", "schedule", "manual")
# How the reason of an upgrade taken back by its checks begins (the upgrade gate words other failures itself).
CHECKS_FAILED_AFTER_UPGRADE = "checks failed after the upgrade"


@dataclass(frozen=True)
class Check:
    """One smoke test of a service; ``json_path`` (dotted, list indexes as numbers) goes with ``json_value``."""

    name: str
    path: str
    method: str = "GET"
    status: int = 200
    body_contains: str | None = None
    json_path: str | None = None
    json_value: JsonScalar = None
    timeout: float = 5.0

    def describe(self) -> str:
        """How operators read the check: ``home: GET / -> 200, body contains 'version=1'``."""
        parts = [f"{self.method} {self.path} -> {self.status}"]
        if self.body_contains is not None:
            parts.append(f"body contains {self.body_contains!r}")
        if self.json_path is not None:
            parts.append(f"{self.json_path} == {json.dumps(self.json_value)}")
        return f"{self.name}: {', '.join(parts)}"


@dataclass(frozen=True)
class Response:
    """What came back: the status and the first ``MAX_BODY_BYTES`` of the body, or why nothing did."""

    status: int | None
    body: bytes = b""
    latency: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """One run of one check against one version of a tenant service."""

    tenant: str
    service: str
    check: str
    image: str
    outcome: Outcome
    latency: float
    detail: str
    trigger: str

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    def describe(self) -> str:
        """``a/home failed on erp/demo-svc:2 in 0.012 s: body does not contain 'version=1' (...)``."""
        return f"{self.service}/{self.check} {self.outcome} on {self.image} in {self.latency:.3f} s: {self.detail}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _excerpt(body: bytes) -> str:
    text = body[: BODY_EXCERPT * 4].decode("utf-8", errors="replace")
    return _cut(" ".join(text.split()), BODY_EXCERPT)


def json_lookup(document: object, path: str) -> tuple[bool, object]:
    """The value at a dotted ``path`` (``data.items.0.state``): (found, value); list indexes are numbers."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _same_json(found: object, expected: JsonScalar) -> bool:
    # JSON has no int/float or bool/int distinction worth failing on (1 == 1.0), but True must not equal 1.
    if isinstance(found, bool) or isinstance(expected, bool):
        return isinstance(found, bool) and isinstance(expected, bool) and found is expected
    return found == expected


def _judge_json(check: Check, body: bytes) -> str | None:
    assert check.json_path is not None
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return f"body is not JSON ({_excerpt(body)!r})"
    found, value = json_lookup(document, check.json_path)
    if not found:
        return f"JSON has no field {check.json_path}"
    if not _same_json(value, check.json_value):
        shown = _cut(json.dumps(value, default=str), BODY_EXCERPT)
        return f"JSON field {check.json_path} is {shown}, expected {json.dumps(check.json_value)}"
    return None


def evaluate(check: Check, response: Response) -> tuple[Outcome, str]:
    """Whether ``response`` is what ``check`` expects, and a short detail saying what was seen.

    The first unmet expectation decides (status, then body substring, then JSON field). The detail quotes at most
    ``BODY_EXCERPT`` characters of the body and never a request header, so it holds no secret of the tenant.
    """
    if response.status is None:
        return "failed", _cut(f"no answer: {response.error or 'unknown error'}", MAX_DETAIL)
    if response.status != check.status:
        why = f"status {response.status}, expected {check.status}"
        if response.body:
            why += f" ({_excerpt(response.body)!r})"
        return "failed", _cut(why, MAX_DETAIL)
    if check.body_contains is not None and check.body_contains.encode("utf-8") not in response.body:
        return "failed", _cut(
            f"body does not contain {check.body_contains!r} ({_excerpt(response.body)!r})", MAX_DETAIL
        )
    if check.json_path is not None:
        problem = _judge_json(check, response.body)
        if problem is not None:
            return "failed", _cut(problem, MAX_DETAIL)
    return "passed", f"status {response.status}"


def failing(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The failed results, in (service, check) order."""
    return sorted((r for r in results if r.failed), key=lambda r: (r.service, r.check))


def summary(results: Sequence[CheckResult]) -> str:
    """A condition message: how many failed of how many, then the first failures with their figures."""
    bad = failing(results)
    head = f"{len(bad)} of {len(results)} checks failed"
    shown = "; ".join(r.describe() for r in bad[:3])
    more = f"; {len(bad) - 3} more" if len(bad) > 3 else ""
    return _cut(f"{head}: {shown}{more}" if bad else f"{len(results)} checks passed", 2 * MAX_DETAIL)


def newly_failing(before: Iterable[tuple[str, str]], results: Iterable[CheckResult]) -> list[CheckResult]:
    """Failed results whose (service, check) was not failing before: the ones worth one alert each."""
    known = set(before)
    return [r for r in failing(results) if (r.service, r.check) not in known]

"""Input model of a check (smoke test) as stored, validated field by field and bounded (pure).

``catalog_services.checks`` and ``tenant_services.checks`` hold a JSON list of these objects (docs/schema.md
"Checks"); ``desired_state.inputs`` validates each list with ``CheckInput`` and ``desired_state.specs`` resolves the
tenant's list (its own, else the catalog's) into ``reconciler.core.checks.Check`` values, checked against the
service's route. Every bound is here, next to the field it bounds; errors say what would be accepted.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, model_validator

from desired_state.bounds import MAX_URL_PATH
from reconciler.core.checks import Check

# A service has a handful of smoke tests; each one is a request after every rollout and on every schedule tick.
MAX_CHECKS = 10
CHECK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# Read-only by intent: a smoke test must not change the tenant's data, and these carry no request body.
CHECK_METHODS = ("GET", "HEAD", "OPTIONS")
# A request path with an optional query string: URL characters only, no spaces, no fragment.
CHECK_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
MAX_BODY_CONTAINS = 256
MAX_JSON_PATH = 128
JSON_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MAX_JSON_VALUE = 256
MIN_CHECK_TIMEOUT = 0.1
# Checks of a rollout run while the old version waits to be stopped: a slow check holds the rollout up.
MAX_CHECK_TIMEOUT = 30.0


def _check_name(value: str) -> str:
    if not CHECK_NAME_RE.match(value):
        raise ValueError("must be a check name: lowercase letters, digits and '-', starting with a letter, 1-40 long")
    return value


def _check_path(value: str) -> str:
    if len(value) > MAX_URL_PATH or not CHECK_PATH_RE.match(value) or "//" in value.split("?", 1)[0]:
        raise ValueError(
            "must be a request path starting with /, optionally with a ?query, URL characters only, no spaces "
            f"(at most {MAX_URL_PATH} characters), e.g. /health or /api/status?full=1"
        )
    return value


def _check_text(value: str) -> str:
    if not value or len(value) > MAX_BODY_CONTAINS or not value.isprintable():
        raise ValueError(f"must be 1 to {MAX_BODY_CONTAINS} printable characters")
    return value


def _check_json_path(value: str) -> str:
    if len(value) > MAX_JSON_PATH or not JSON_PATH_RE.match(value):
        raise ValueError(
            f"must be a dotted field path such as status or data.items.0.state (at most {MAX_JSON_PATH} characters)"
        )
    return value


def _check_json_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_JSON_VALUE:
        raise ValueError(f"must be at most {MAX_JSON_VALUE} characters")
    return value


class CheckInput(BaseModel):
    """One check as the UI or the YAML file writes it (unknown keys refused, types strict)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, AfterValidator(_check_name)]
    path: Annotated[str, AfterValidator(_check_path)]
    method: Literal["GET", "HEAD", "OPTIONS"] = "GET"
    status: Annotated[StrictInt, Field(ge=100, le=599)] = 200
    body_contains: Annotated[str, AfterValidator(_check_text)] | None = None
    json_path: Annotated[str, AfterValidator(_check_json_path)] | None = None
    json_value: Annotated[StrictBool | StrictInt | StrictFloat | str | None, AfterValidator(_check_json_value)] = None
    timeout: Annotated[float, Field(ge=MIN_CHECK_TIMEOUT, le=MAX_CHECK_TIMEOUT, allow_inf_nan=False)] = 5.0

    @model_validator(mode="after")
    def _json_pair(self) -> CheckInput:
        if self.json_path is None and "json_value" in self.model_fields_set:
            raise ValueError("json_value needs json_path (the field whose value is compared)")
        if self.method == "HEAD" and (self.body_contains is not None or self.json_path is not None):
            raise ValueError("a HEAD request gets no body; use GET to check body_contains or json_path")
        return self

    def to_check(self) -> Check:
        return Check(
            name=self.name,
            path=self.path,
            method=self.method,
            status=self.status,
            body_contains=self.body_contains,
            json_path=self.json_path,
            json_value=self.json_value,
            timeout=self.timeout,
        )


def check_list(value: Any) -> Any:
    """Before validation: NULL is no list, anything but a list is refused, and the list is bounded."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValueError('must be a list of checks, e.g. [{"name": "home", "path": "/"}]')
    if len(value) > MAX_CHECKS:
        raise ValueError(f"has {len(value)} checks; at most {MAX_CHECKS} per service")
    return value


def unique_names(value: tuple[CheckInput, ...] | None) -> tuple[CheckInput, ...] | None:
    """After validation: two checks of one service never share a name (results are keyed by it)."""
    if value is None:
        return None
    seen: set[str] = set()
    for check in value:
        if check.name in seen:
            raise ValueError(f"names the check {check.name!r} twice; check names must differ within a service")
        seen.add(check.name)
    return value

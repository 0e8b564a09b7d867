"""Which operation requests start next (``request_pool.pick``) and how a stored priority is read
(``operation_requests.request_priority``): pure, on plain records."""

from __future__ import annotations

import pytest

from desired_state.operation_requests import RequestRecord, request_priority
from reconciler.runtime.operations.request_pool import pick


def _request(request_id: int, tenant: str, priority: int = 0) -> RequestRecord:
    return RequestRecord(
        id=request_id,
        tenant=tenant,
        kind="backup",
        backup_id=None,
        restore=False,
        status="pending",
        requested_at=None,
        picked_at=None,
        done_at=None,
        error=None,
        operation_id=None,
        priority=priority,
    )


def _ids(requests: list[RequestRecord]) -> list[int]:
    return [r.id for r in requests]


def test_higher_priority_first_then_the_oldest() -> None:
    pending = [_request(1, "acme"), _request(2, "beta"), _request(3, "gamma", priority=5), _request(4, "delta")]
    assert _ids(pick(pending, busy=set())) == [3, 1, 2, 4]


def test_one_request_per_tenant_and_none_of_a_busy_tenant() -> None:
    pending = [_request(1, "acme"), _request(2, "acme"), _request(3, "beta"), _request(4, "gamma")]
    assert _ids(pick(pending, busy={"beta"})) == [1, 4]


def test_a_tenants_requests_keep_their_order_and_the_urgent_one_lifts_its_turn() -> None:
    # acme's restore (9) was asked after its backup: the backup still runs first, but before beta's 5.
    pending = [_request(1, "acme"), _request(2, "beta", priority=5), _request(3, "acme", priority=9)]
    assert _ids(pick(pending, busy=set())) == [1, 2]
    assert _ids(pick([pending[1], pending[2]], busy=set())) == [3, 2]


def test_negative_priorities_wait_for_the_default() -> None:
    pending = [_request(1, "acme", priority=-1), _request(2, "beta")]
    assert _ids(pick(pending, busy=set())) == [2, 1]


@pytest.mark.parametrize("value", [0, -100, 100, 7])
def test_priorities_in_range_are_read_as_written(value: int) -> None:
    assert request_priority(1, "acme", value) == (value, None)


@pytest.mark.parametrize("value", [101, -101, 2**31 - 1, "urgent", 1.5, None, True, "9" * 500])
def test_a_hostile_priority_is_that_requests_error(value: object) -> None:
    priority, problem = request_priority(12, "acme", value)
    assert priority == 0
    assert problem is not None
    assert problem.startswith("request 12 of tenant 'acme': field priority = ")
    assert problem.endswith("is not an integer from -100 to 100 (higher runs first; default 0)")
    assert len(problem) < 200  # the value is shown shortened

"""Work queue, pass locks and pass deadlines (issue 5): dedup, cooldown, priorities, fairness, exclusion."""

from __future__ import annotations

import threading
import time

from reconciler.runtime.passes.deadline import PassDeadline
from reconciler.runtime.passes.locks import PassLocks
from reconciler.runtime.service.workqueue import ALL, WorkQueue


class TestWorkQueue:
    def test_the_most_urgent_trigger_wins_and_the_earliest_due_time(self) -> None:
        queue = WorkQueue()
        queue.add("acme", 0.5, priority=1, trigger="resync")
        queue.add("acme", 0.0, priority=0, trigger="nudge")
        item = queue.get_item(timeout=0.1)
        assert item is not None and (item.key, item.trigger) == ("acme", "nudge")

    def test_a_storm_while_processing_comes_back_once_after_the_cooldown(self) -> None:
        queue = WorkQueue(cooldown=0.3)
        queue.add("acme", priority=0, trigger="nudge")
        started = time.monotonic()
        assert queue.get(timeout=0.1) == "acme"
        for _ in range(1000):
            queue.add("acme", priority=0, trigger="nudge")
        assert len(queue) == 1
        queue.done("acme")
        assert queue.get(timeout=0.1) is None  # not before the cooldown
        item = queue.get_item(timeout=1)
        assert item is not None and item.key == "acme" and item.trigger == "nudge"
        assert time.monotonic() - started >= 0.3
        queue.done("acme")
        assert queue.get(timeout=0.1) is None

    def test_nudges_go_before_resync_but_a_long_wait_ages_into_priority(self) -> None:
        queue = WorkQueue(aging=0.2)
        queue.add("old", priority=1)
        queue.add("nudged", priority=0, trigger="nudge")
        assert queue.get(timeout=0.1) == "nudged"
        queue.add("nudged-again", priority=0, trigger="nudge")
        time.sleep(0.25)
        queue.add("fresh", priority=0, trigger="nudge")
        # "old" has waited past the aging limit: it now ranks with priority 0 and goes first (earliest due).
        assert queue.get(timeout=0.1) == "old"

    def test_distinct_keys_are_handed_to_parallel_workers_but_a_key_to_one(self) -> None:
        queue = WorkQueue()
        for key in ("a", "b", "c", ALL):
            queue.add(key)
        taken = {queue.get(timeout=0.1) for _ in range(4)}
        assert taken == {"a", "b", "c", ALL}
        queue.add("a")
        assert queue.get(timeout=0.05) is None
        queue.done("a")
        assert queue.get(timeout=0.1) == "a"

    def test_a_delayed_retry_does_not_block_other_keys(self) -> None:
        queue = WorkQueue()
        queue.add("failing", 5.0, trigger="retry")
        queue.add("healthy")
        assert queue.get(timeout=0.1) == "healthy"
        assert queue.get(timeout=0.1) is None

    def test_resync_tenants_are_handed_out_in_batches_nudges_and_the_sweep_alone(self) -> None:
        queue = WorkQueue()
        for index in range(5):
            queue.add(f"t{index}", priority=1, trigger="resync")
        queue.add(ALL, priority=1, trigger="resync")
        queue.add("nudged", priority=0, trigger="nudge")
        assert [i.key for i in queue.get_batch(3, timeout=0.1)] == ["nudged"]
        batch = queue.get_batch(3, timeout=0.1)
        assert [i.key for i in batch] == ["t0", "t1", "t2"] and {i.trigger for i in batch} == {"resync"}
        queue.add("t9", priority=1, trigger="retry")
        assert [i.key for i in queue.get_batch(3, timeout=0.1)] == ["t3", "t4"]
        assert [i.key for i in queue.get_batch(3, timeout=0.1)] == [ALL]
        assert [i.key for i in queue.get_batch(3, timeout=0.1)] == ["t9"]


class TestPassLocks:
    def test_one_tenant_is_never_in_two_passes_but_two_tenants_run_together(self) -> None:
        locks = PassLocks()
        inside: list[str] = []
        overlap = threading.Event()
        gate = threading.Event()

        def run(tenant: str) -> None:
            with locks.hold({tenant}):
                inside.append(tenant)
                if len(set(inside)) == 2:
                    overlap.set()
                gate.wait(1)
                inside.remove(tenant)

        threads = [threading.Thread(target=run, args=(t,)) for t in ("acme", "globex")]
        for thread in threads:
            thread.start()
        assert overlap.wait(1), "passes of two tenants should run side by side"
        gate.set()
        for thread in threads:
            thread.join()

        entered = threading.Event()
        with locks.hold({"acme"}):
            other = threading.Thread(target=lambda: (locks.hold({"acme"}).__enter__(), entered.set()), daemon=True)
            other.start()
            assert not entered.wait(0.2), "a second pass of the same tenant must wait"

    def test_a_full_pass_waits_for_scoped_passes_and_excludes_them(self) -> None:
        locks = PassLocks()
        order: list[str] = []
        release = threading.Event()

        def scoped() -> None:
            with locks.hold({"acme"}):
                order.append("scoped-in")
                release.wait(1)
                order.append("scoped-out")

        def full() -> None:
            with locks.hold(None):
                order.append("full")

        first = threading.Thread(target=scoped)
        first.start()
        time.sleep(0.05)
        second = threading.Thread(target=full)
        second.start()
        time.sleep(0.05)
        assert order == ["scoped-in"]
        release.set()
        first.join()
        second.join()
        assert order == ["scoped-in", "scoped-out", "full"]


def test_pass_deadline_is_per_worker_thread() -> None:
    stop = threading.Event()
    deadline = PassDeadline(stop)
    deadline.begin(0.05)
    seen_elsewhere: list[bool] = []
    time.sleep(0.06)
    worker = threading.Thread(target=lambda: seen_elsewhere.append(deadline.is_set()))
    worker.start()
    worker.join()
    assert deadline.is_set() and deadline.expired()
    assert seen_elsewhere == [False]
    deadline.end()
    assert not deadline.is_set()
    stop.set()
    assert deadline.is_set()

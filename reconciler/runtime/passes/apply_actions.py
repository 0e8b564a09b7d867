"""What every step of the executor stands on: its configuration, one engine action at a time, and the bookkeeping.

Part of apply, the pipeline's sixth stage. ``passes.executor.Executor`` is built on ``ApplyActions`` (through
``passes.container_steps``, ``passes.resource_steps`` and ``passes.rollout_steps``); ``passes.reconcile`` makes one
by constructor, with the fields below, when its ``Reconciler`` is made. Here: ``_act`` runs one engine action once a
slot of the process's ``ActionSlots`` is free, and not at all once the pass was told to stop (``_check_stop``);
``_phase`` runs a phase's independent changes together (``passes.parallel``) and records those done in plan order
(``_done``: the outcome, one log line with tenant and reason, the ``on_applied`` hook); ``_remove`` removes
containers a step gave up on (failed new halves, rolled-back upgrades) while the old ones keep serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from reconciler.core.diff import SubnetPool
from reconciler.core.plan import Change
from reconciler.core.resources import Container
from reconciler.runtime.passes.check_step import RolloutChecks
from reconciler.runtime.passes.engine import ContainerEngine
from reconciler.runtime.passes.outcome import Interrupted, TenantOutcome
from reconciler.runtime.passes.parallel import ActionSlots, Result, first_error, run_all
from reconciler.runtime.passes.readiness import Probe, probe_once
from reconciler.runtime.passes.stages import Router, UpgradeGate
from renderers.containers import Naming

log = logging.getLogger("reconciler.apply")

# Engine actions in flight across the process unless configured (RECONCILER_APPLY_CONCURRENCY): on 2 cores the
# engine's create throughput stops growing past about 4-8 parallel creates (docs/runtime.md).
DEFAULT_APPLY_CONCURRENCY = 6

T = TypeVar("T")


@dataclass
class ApplyActions:
    """The executor's fields, and what every step does with them: act, check for a stop, record."""

    docker: ContainerEngine
    naming: Naming
    router: Router | None = None
    pool: SubnetPool = field(default_factory=SubnetPool)
    ready_timeout: float = 60.0
    stop: threading.Event = field(default_factory=threading.Event)
    # Called after every applied change (metrics); kept as a hook so the executor needs no metrics import.
    on_applied: Callable[[Change], None] | None = None
    # Backup and migration before an image change, pin after a failed one; None: image changes are plain replacements.
    upgrades: UpgradeGate | None = None
    # Engine actions in flight, shared by every tenant the process applies at once (``passes.parallel``).
    slots: ActionSlots = field(default_factory=lambda: ActionSlots(DEFAULT_APPLY_CONCURRENCY))
    # How readiness asks a container's health path (an HTTP GET; unit tests of ordering give their own).
    probe: Probe = probe_once
    # Checks through the route after a rollout, before replaced containers go (``passes.check_step``); None: none.
    checks: RolloutChecks | None = None

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted("stopping: pass interrupted between actions")

    def _done(self, outcome: TenantOutcome, change: Change, detail: str = "") -> None:
        outcome.applied.append(change)
        log.info(
            "tenant=%s %s %s %s (%s)%s",
            change.tenant,
            change.action.value,
            change.kind,
            change.name,
            change.reason,
            f" {detail}" if detail else "",
            extra={
                "tenant": change.tenant,
                # Containers (and routes) belong to one service; networks and volumes to the whole tenant.
                "service": getattr(change.before or change.after, "service", None),
                "kind": change.kind,
                "action": change.action.name.lower(),
                "reason": change.reason,
            },
        )
        if self.on_applied:
            self.on_applied(change)

    def _act(self, action: Callable[[], None], *, undo: bool = False) -> None:
        """One engine action, once a slot is free; a pass told to stop starts no new one, except to ``undo``
        (remove a new container that failed) what it already began, so the old version keeps serving."""
        with self.slots.hold():
            if not undo:
                self._check_stop()
            action()

    def _together(self, tasks: Sequence[Callable[[], None]]) -> list[Result[None]]:
        return run_all(tasks, self.stop)

    @staticmethod
    def _raise_interrupted(results: Sequence[Result[T]]) -> None:
        if any(isinstance(r.error, Interrupted) for r in results):
            raise Interrupted("stopping: pass interrupted between actions (actions in flight finished)")

    def _phase(self, outcome: TenantOutcome, changes: Sequence[Change], action: Callable[[Change], str]) -> None:
        """Carry out independent changes together; log those done in plan order, then raise what failed."""
        results = run_all([partial(action, c) for c in changes], self.stop)
        for change, result in zip(changes, results, strict=True):
            if result.error is None:
                self._done(outcome, change, result.value or "")
        self._raise_interrupted(results)
        error = first_error(results)
        if error is not None:
            raise error

    def _remove(self, doomed: Sequence[tuple[Container, str | None]], tenant: str) -> None:
        """Remove containers together (failed new halves, rolled-back upgrades); the old ones keep serving."""
        removals = [partial(self._act, partial(self.docker.remove_container, c), undo=True) for c, _ in doomed]
        results = self._together(removals)
        for (container, message), result in zip(doomed, results, strict=True):
            if result.error is None and message:
                log.warning("tenant=%s - container %s (%s)", tenant, container.name, message)
        self._raise_interrupted(results)
        error = first_error(results)
        if error is not None:
            raise error

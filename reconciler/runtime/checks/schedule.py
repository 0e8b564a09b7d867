"""Scheduled checks: every check of every running tenant, each ``RECONCILER_CHECK_INTERVAL`` seconds.

Registered by ``runtime.wiring`` on the runtime's scheduler, so it runs only while this instance leads. A run
reads the desired state and the pins, checks each running tenant that was rolled out at least once (its status
has an applied spec: a tenant still being created is not judged) and is not held by a restore, under the tenant's
pass lock (never half-way through a rollout), records the results (trigger ``schedule``),
prunes old rows, and asks for a pass of each tenant whose verdict changed so its ``ChecksPassing`` condition
follows at once. The image recorded is the one that serves: a pinned service's pinned image, both images of a
service with two versions (joined by ``+``; a request through the route reaches either).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from desired_state.load import load_desired_state
from desired_state.pins import PinRecord, read_pins
from desired_state.specs import TenantSpec
from desired_state.status import read_statuses
from reconciler.runtime.checks.runner import CheckRunner
from reconciler.runtime.passes.reconcile import Reconciler

log = logging.getLogger("reconciler.checks")

JOB_ID = "checks"


def serving_images(spec: TenantSpec, pins: Iterable[PinRecord]) -> dict[str, str]:
    """Service → the image(s) serving it, for the services with checks and a route."""
    held = {(p.service, p.failed_image): p.pinned_image for p in pins if p.tenant == spec.name}
    images: dict[str, str] = {}
    for service in spec.services:
        if not service.checks or service.route is None:
            continue
        found = {held.get((service.name, track.image), track.image) for track in service.tracks() if track.replicas}
        if found:
            images[service.name] = "+".join(sorted(found))
    return images


@dataclass
class ScheduledChecks:
    runner: CheckRunner
    reconciler: Reconciler

    def run(self, tenants: Iterable[str] | None = None, trigger: str = "schedule") -> list[str]:
        """Check the running tenants (or only ``tenants``); the names of those whose verdict changed."""
        engine = self.reconciler.engine
        desired = load_desired_state(engine, self.reconciler.base_domain, self.reconciler.input_limits)
        rolled_out = {s.tenant for s in read_statuses(engine) if s.applied_hash is not None}
        pins = read_pins(engine)
        wanted = set(tenants) if tenants is not None else None
        operations = self.reconciler.operations
        held = operations.holds() if operations is not None else {}
        changed: list[str] = []
        for name, spec in sorted(desired.tenants.items()):
            if spec.state != "running" or name not in rolled_out or (wanted is not None and name not in wanted):
                continue
            if name in held:  # a restore answers 503 on purpose meanwhile: not the service's failure
                continue
            images = serving_images(spec, pins)
            if not images:
                continue
            # Under the tenant's pass lock: never judged half-way through its rollout (which checks it itself).
            with self.reconciler.locks.hold([name]):
                results = self.runner.run(spec, images, dict.fromkeys(images, trigger))
            if self.runner.settle(name, results):
                changed.append(name)
        return changed

    def tick(self) -> None:
        """The scheduled job: run, prune, and a pass for each tenant whose verdict changed (its status follows)."""
        changed = self.run()
        self.runner.prune()
        if changed:
            log.info("checks changed verdict for %s; reconciling them", ", ".join(changed))
            self.reconciler.run_pass(changed, trigger="checks")

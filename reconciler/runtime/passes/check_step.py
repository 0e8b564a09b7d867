"""Phase 3b of a tenant's apply: the checks of what the pass rolled out, through the route, before old containers go.

Called by ``passes.executor`` once the route serves the tenant's new containers and before the replaced ones are
stopped. Every service that got new ready containers in this pass (create, replacement, upgrade, restart after a
restore, resumed replacement) and declares checks has them run through its route (``runtime.checks.runner``). A
failing check after an upgrade whose rollback is on (the catalog entry's ``checks_rollback``, else
``RECONCILER_CHECK_ROLLBACK``) takes the upgrade back exactly as a failed health check would, except that the new
version served for the length of the checks: the route goes back to the old containers (still running), the new
ones are removed, and the upgrade gate hears why (it pins the service and sends the one alert). The old version's
checks then run again, so the results say what serves now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Protocol

from desired_state.specs import ServiceSpec, TenantSpec
from reconciler.core.checks import CHECKS_FAILED_AFTER_UPGRADE, CheckResult, summary
from reconciler.core.plan import Change
from reconciler.core.resources import Container
from reconciler.core.upgrades import Upgrade, image_of
from reconciler.runtime.passes.outcome import TenantOutcome


class RolloutChecks(Protocol):
    """What the executor asks of the check runner (``runtime.checks.runner.CheckRunner`` implements it)."""

    def rolls_back(self, service: ServiceSpec) -> bool: ...

    def run(
        self, spec: TenantSpec, images: Mapping[str, str], trigger: Mapping[str, str]
    ) -> dict[str, list[CheckResult]]: ...

    def settle(self, tenant: str, results: Mapping[str, Iterable[CheckResult]], handed: Iterable[str] = ()) -> bool: ...

    def rolled_back(self, upgrade: Upgrade) -> None: ...


def served_images(containers: Iterable[Container]) -> dict[str, str]:
    """Service → the image(s) its routed containers run (two versions: both, joined by ``+``)."""
    images: dict[str, set[str]] = {}
    for container in containers:
        images.setdefault(container.service, set()).add(image_of(container))
    return {service: "+".join(sorted(found)) for service, found in images.items()}


def rollout_targets(spec: TenantSpec, ready: Mapping[str, Container], routed: Iterable[Container]) -> dict[str, str]:
    """The services to check after this pass (new ready containers, checks declared, a route), with their images."""
    images = served_images(routed)
    fresh = {c.service for c in ready.values()}
    return {
        name: images[name]
        for name in sorted(fresh)
        if name in images and (service := spec.service(name)) is not None and service.checks and service.route
    }


def triggers(targets: Iterable[str], upgraded: Iterable[Upgrade]) -> dict[str, str]:
    services = {u.service for u in upgraded}
    return {name: "upgrade" if name in services else "rollout" for name in targets}


def to_revert(
    spec: TenantSpec,
    passed: Mapping[Upgrade, tuple[Change, ...]],
    results: Mapping[str, list[CheckResult]],
    checks: RolloutChecks,
) -> dict[Upgrade, str]:
    """The upgrades a failing check takes back, with why (the figures of the failed checks)."""
    reverts: dict[Upgrade, str] = {}
    for upgrade, changes in passed.items():
        found = results.get(upgrade.service, [])
        service = spec.service(upgrade.service)
        if service is None or not any(r.failed for r in found) or not checks.rolls_back(service):
            continue
        # The way back is the old containers, still running under other names; without them there is none.
        if all(_revertible(change) for change in changes):
            reverts[upgrade] = f"{CHECKS_FAILED_AFTER_UPGRADE}: {summary(found)}"
    return reverts


def _revertible(change: Change) -> bool:
    old, new = change.before, change.after
    return isinstance(old, Container) and isinstance(new, Container) and old.name != new.name and old.running


def take_back(
    reverts: Mapping[Upgrade, str],
    passed: dict[Upgrade, tuple[Change, ...]],
    ready: dict[str, Container],
    replaced_ok: list[Change],
    outcome: TenantOutcome,
) -> list[tuple[Container, str | None]]:
    """The executor's books after ``reverts``: their replacements leave ``passed``, ``ready`` and ``replaced_ok`` and
    are recorded as failed; returns the new containers to remove (once the route is back on the old ones)."""
    doomed: list[tuple[Container, str | None]] = []
    for upgrade, why in reverts.items():
        for change in passed.pop(upgrade):
            assert isinstance(change.after, Container)
            ready.pop(change.after.name, None)
            replaced_ok.remove(change)
            if change in outcome.applied:
                outcome.applied.remove(change)
            outcome.failed.append((change, why))
            doomed.append((replace(change.after, state="running"), "upgrade rolled back: a check failed"))
    return doomed

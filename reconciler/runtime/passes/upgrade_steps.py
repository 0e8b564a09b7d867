"""The executor's side of the upgrade gate (``stages.UpgradeGate``): ask before, judge after.

``passes.executor`` calls ``ask_gate`` before any new container of the tenant starts, and ``judge_upgrades``
once every new container of the phase was waited for: an upgrade is all replicas or none, so when one new
replica of an upgraded service failed, the ones that got ready are taken back (the executor removes them before
routing, the old version keeps serving) and the gate hears which upgrades failed and why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from desired_state.specs import TenantSpec
from reconciler.core.errors import ReconcileError
from reconciler.core.plan import Change
from reconciler.core.resources import Container
from reconciler.core.upgrades import Upgrade
from reconciler.runtime.passes.outcome import TenantOutcome
from reconciler.runtime.passes.stages import UpgradeGate

log = logging.getLogger("reconciler.apply")


def ask_gate(
    gate: UpgradeGate, spec: TenantSpec, upgrades: Mapping[Upgrade, tuple[Change, ...]], outcome: TenantOutcome
) -> set[Change]:
    """The replacements of refused upgrades, recorded as failed in ``outcome``: they are not carried out."""
    try:
        refused = dict(gate.before_upgrades(spec, list(upgrades)))
    except ReconcileError as exc:
        refused = {upgrade: str(exc) for upgrade in upgrades}
    held: set[Change] = set()
    for upgrade, why in refused.items():
        log.warning("tenant=%s upgrade %s held back: %s", spec.name, upgrade.describe(), why)
        for change in upgrades.get(upgrade, ()):
            outcome.failed.append((change, why))
            held.add(change)
    return held


def judge_upgrades(
    upgrades: Mapping[Upgrade, tuple[Change, ...]],
    held: set[Change],
    outcome: TenantOutcome,
    ready: dict[str, Container],
    replaced_ok: list[Change],
) -> tuple[dict[Upgrade, str | None], list[tuple[Container, str | None]]]:
    """Each upgrade that went ahead with None or why it failed, and the new containers to take back.

    A failed upgrade's ready replicas leave ``ready``, ``replaced_ok`` and ``outcome.applied`` and are recorded
    as failed, so routing never sees them.
    """
    failures = {change: why for change, why in outcome.failed}
    results: dict[Upgrade, str | None] = {}
    doomed: list[tuple[Container, str | None]] = []
    for upgrade, changes in upgrades.items():
        if any(change in held for change in changes):
            continue
        why = next((failures[c] for c in changes if c in failures), None)
        results[upgrade] = why
        if why is None:
            continue
        for change in changes:
            if change not in replaced_ok or not isinstance(change.after, Container):
                continue
            replaced_ok.remove(change)
            ready.pop(change.after.name, None)
            if change in outcome.applied:
                outcome.applied.remove(change)
            outcome.failed.append((change, f"another replica of the upgrade failed: {why}"))
            doomed.append((replace(change.after, state="running"), f"upgrade rolled back: {why}"))
    return results, doomed

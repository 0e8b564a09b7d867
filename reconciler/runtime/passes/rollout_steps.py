"""The executor's rollout steps: the upgrade gate around image changes, and the checks after a rollout.

Part of apply, the pipeline's sixth stage; ``passes.executor.Executor`` calls them around its phase 2 and after
routing (3b). Before any new container starts, the gate (``UpgradeGate``: backup and migration) is asked about
every upgrade, and a refused one is not carried out (``passes.upgrade_steps.ask_gate``); once the new containers
were waited for, an upgrade is all replicas or none (``judge_upgrades``). With checks configured, the checks of
what was rolled out run through the route (``passes.check_step``): a failing one after an upgrade routes the old
containers back and removes the new ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from desired_state.specs import TenantSpec
from reconciler.core.plan import Change
from reconciler.core.resources import Container
from reconciler.core.upgrades import Upgrade
from reconciler.runtime.passes.apply_actions import ApplyActions
from reconciler.runtime.passes.check_step import rollout_targets, take_back, to_revert, triggers
from reconciler.runtime.passes.container_steps import old_halves
from reconciler.runtime.passes.outcome import Buckets, TenantOutcome
from reconciler.runtime.passes.route_step import Backends, route_tenant
from reconciler.runtime.passes.upgrade_steps import ask_gate, judge_upgrades


class RolloutSteps(ApplyActions):
    """Around phase 2 and after routing in ``Executor.apply_tenant``: the upgrade gate, then the checks (3b)."""

    def _before_upgrades(
        self, spec: TenantSpec | None, upgrades: Mapping[Upgrade, tuple[Change, ...]], outcome: TenantOutcome
    ) -> set[Change]:
        """Ask the gate; the replacements of refused upgrades are recorded as failed and not carried out."""
        if self.upgrades is None or spec is None or not upgrades:
            return set()
        self._check_stop()
        return ask_gate(self.upgrades, spec, upgrades, outcome)

    def _after_upgrades(
        self,
        spec: TenantSpec | None,
        upgrades: Mapping[Upgrade, tuple[Change, ...]],
        held: set[Change],
        outcome: TenantOutcome,
        ready: dict[str, Container],
        replaced_ok: list[Change],
    ) -> dict[Upgrade, tuple[Change, ...]]:
        """An upgrade is all replicas or none: if one new replica failed, the ready ones go too, before routing.

        Without checks every upgrade is reported to the gate now. With checks the failed ones are, and the ones
        that went ahead are returned, to be reported once their checks ran (``_check_rollout``)."""
        if self.upgrades is None or spec is None or not upgrades:
            return {}
        results, doomed = judge_upgrades(upgrades, held, outcome, ready, replaced_ok)
        self._remove(doomed, spec.name)
        if self.checks is None:
            if results:
                self.upgrades.after_upgrades(spec, results)
            return {}
        failed = {upgrade: why for upgrade, why in results.items() if why is not None}
        if failed:
            self.upgrades.after_upgrades(spec, failed)
        return {upgrade: upgrades[upgrade] for upgrade, why in results.items() if why is None}

    def _check_rollout(
        self,
        spec: TenantSpec | None,
        by: Buckets,
        backends: Backends,
        passed: dict[Upgrade, tuple[Change, ...]],
        outcome: TenantOutcome,
        replaced_ok: list[Change],
        hold_removal: str | None,
    ) -> None:
        """3b. Checks of what the pass rolled out; a failing one after an upgrade takes it back (``check_step``).

        A reverted upgrade leaves ``passed``, its changes leave ``replaced_ok`` and are recorded as failed."""
        if self.checks is None or self.router is None or by.route is None or spec is None or spec.state != "running":
            return
        self._check_stop()
        ready = dict(backends.ready)
        targets = rollout_targets(spec, ready, backends.final())
        if not targets:
            return
        results = self.checks.run(spec, targets, triggers(targets, passed))
        reverts = to_revert(spec, passed, results, self.checks)
        if reverts:
            doomed = take_back(reverts, passed, ready, replaced_ok, outcome)
            # The gate hears it first (operation failed, pin, the one alert), whatever the way back meets.
            if self.upgrades is not None:
                self.upgrades.after_upgrades(spec, reverts)
            for upgrade in reverts:
                self.checks.rolled_back(upgrade)
            # The old containers are still running: the route goes back to them, then the new ones go.
            _, removing = old_halves(by, replaced_ok)
            back = Backends(backends.observed, ready, removing, backends.discarded)
            route_tenant(self.router, spec.name, spec, by.route, back, hold_removal)
            self._remove(doomed, spec.name)
            again = rollout_targets(spec, {c.name: c for c in back.final()}, back.final())
            again = {name: image for name, image in again.items() if name in {u.service for u in reverts}}
            results.update(self.checks.run(spec, again, dict.fromkeys(again, "rollback")))
        self.checks.settle(spec.name, results, handed={u.service for u in reverts})

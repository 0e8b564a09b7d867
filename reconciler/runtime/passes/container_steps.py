"""The executor's container steps: bring up new containers, wait for them, and finish interrupted replacements.

Part of apply, the pipeline's sixth stage; ``passes.executor.Executor`` calls these in its phase 2 (every new
container of the tenant, then one readiness wait for all of them) before it routes. A replacement starts its new
container next to the old one (``_launch``: created, or started; a ``resume`` change's is only started, if it is not
running; the old one goes first only when both share a name); a new half that never gets ready is removed and the
old one keeps serving. ``old_halves`` says which old containers go once routing moved off them (``passes.executor``
in phase 4, ``passes.rollout_steps`` when it routes back).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

from reconciler.core.plan import Action, Change
from reconciler.core.resources import Container
from reconciler.runtime.passes.apply_actions import ApplyActions
from reconciler.runtime.passes.outcome import Buckets, TenantOutcome
from reconciler.runtime.passes.parallel import first_error
from reconciler.runtime.passes.readiness import wait_all_ready

log = logging.getLogger("reconciler.apply")

# Removal of a container by Docker takes well under a second; past this the create fails and is retried.
NAME_FREE_TIMEOUT = 10.0
# Readiness re-reads fewer waiting containers one by one (one list call each), more with one tenant listing.
LIST_TENANT_FROM = 3


class ContainerSteps(ApplyActions):
    """Phase 2 of ``Executor.apply_tenant``: new containers up and ready, resumed replacements settled."""

    def _await_name_free(self, name: str) -> None:
        """A container of this name that Docker is still removing (``docker rm -f`` just now) frees it shortly."""
        deadline = time.monotonic() + NAME_FREE_TIMEOUT
        while time.monotonic() < deadline and not self.stop.is_set():
            current = self.docker.container(name)
            if current is None or current.state != "removing":
                return
            time.sleep(0.05)

    def _refresh(self, tenant: str, names: Sequence[str]) -> dict[str, Container | None]:
        """Re-read the containers waiting for readiness: one list call each, or one tenant listing for many."""
        if len(names) < LIST_TENANT_FROM:
            return {name: self.docker.container(name) for name in names}
        # An empty scope: the listing inspects nothing (inspections belong to the pass's observation).
        seen = {c.name: c for c in self.docker.observe(tenant, scope=frozenset()).containers}
        return {name: seen.get(name) for name in names}

    def _await_ready(self, tenant: str, containers: Sequence[Container]) -> dict[str, tuple[Container | None, str]]:
        if not containers:
            return {}
        verdicts = wait_all_ready(
            lambda names: self._refresh(tenant, names),
            {c.name: (c.port, c.health) for c in containers},
            timeout=self.ready_timeout,
            stop=self.stop,
            probe=self.probe,
        )
        # Stopped while waiting: the new containers stay as they are; the next pass routes them or resumes the
        # replacement (``core.diff``), as after a crash, rather than this pass removing them in a hurry.
        self._check_stop()
        return verdicts

    def _launch(self, change: Change) -> None:
        """Bring up one new container: create it (or start it), after its same-named predecessor went."""
        new = change.after
        assert isinstance(new, Container)
        if change.operation == "resume":
            if not new.running:
                self._act(partial(self.docker.start_container, new))
            return
        old = change.before if change.action is Action.REPLACE else None
        if isinstance(old, Container) and old.name == new.name:
            # Same name (e.g. its network vanished): the old one cannot serve anyway, so it goes first.
            self._act(partial(self.docker.remove_container, old))
        if change.operation == "start":
            self._act(partial(self.docker.start_container, new))
        else:
            self._await_name_free(new.name)
            self._act(partial(self.docker.run_container, new))

    def _bring_up(
        self, tenant: str, by: Buckets, held: set[Change], outcome: TenantOutcome
    ) -> tuple[dict[str, Container], list[Change], dict[Change, tuple[Container | None, str]]]:
        """Phase 2: every new container of the tenant started together, then one wait for all to be ready.

        Returns the ready ones by name, the fresh replacements that succeeded, and the verdicts of resumed ones.
        A failed new half of a replacement is removed (the old keeps serving); an engine error is raised once
        every other action has ended and the containers that did start were waited for.
        """
        fresh = by.creates + [c for c in by.replaces if c not in held] + by.starts
        launching = fresh + by.resumes
        if launching:
            self._check_stop()
        launched = self._together([partial(self._launch, c) for c in launching])
        self._raise_interrupted(launched)
        up = [c for c, r in zip(launching, launched, strict=True) if r.error is None]
        verdicts = self._await_ready(tenant, [c.after for c in up if isinstance(c.after, Container)])
        ready: dict[str, Container] = {}
        replaced_ok: list[Change] = []
        doomed: list[tuple[Container, str | None]] = []
        for change in (c for c in fresh if c in up):
            new, old = change.after, change.before
            assert isinstance(new, Container)
            started, why = verdicts[new.name]
            if started is None:
                outcome.failed.append((change, why))
                log.warning("tenant=%s container %s not ready: %s", tenant, new.name, why)
                if change.action is Action.REPLACE and not (isinstance(old, Container) and old.name == new.name):
                    # Keep the old version serving; the failed new container goes away.
                    doomed.append((replace(new, state="running"), None))
                continue
            ready[started.name] = started
            self._done(outcome, change, f"ready at {started.ip}")
            if change.action is Action.REPLACE:
                replaced_ok.append(change)
        self._remove(doomed, tenant)
        error = first_error(launched)
        if error is not None:
            raise error
        resumed = {c: verdicts[c.after.name] for c in by.resumes if isinstance(c.after, Container)}
        return ready, replaced_ok, resumed

    def _resume(
        self,
        tenant: str,
        resumed: Mapping[Change, tuple[Container | None, str]],
        outcome: TenantOutcome,
        ready: dict[str, Container],
        replaced_ok: list[Change],
    ) -> set[str]:
        """Interrupted replacements, up to readiness; the names of new halves that never got ready (removed)."""
        discarded: set[str] = set()
        doomed: list[tuple[Container, str | None]] = []
        for change, (started, why) in resumed.items():
            new = change.after
            assert isinstance(new, Container)
            if started is None:
                outcome.failed.append((change, why))
                discarded.add(new.name)
                # Never verified and never ready: it goes, and the old container keeps serving.
                doomed.append((replace(new, state="running"), f"interrupted replacement undone, not ready: {why}"))
                continue
            ready[started.name] = started
            self._done(outcome, change, f"ready at {started.ip}")
            replaced_ok.append(change)
        self._remove(doomed, tenant)
        return discarded


def old_halves(by: Buckets, replaced_ok: Sequence[Change]) -> tuple[list[Container], set[str]]:
    """The old halves of successful replacements (stopped after routing), and every container that goes."""
    leaving = [
        c.before
        for c in replaced_ok
        if isinstance(c.before, Container) and isinstance(c.after, Container) and c.before.name != c.after.name
    ]
    removing = {c.name for c in by.deletes} | {c.name for c in leaving} | {c.name for c in by.stops}
    return leaving, removing

"""Never two migrations of one tenant service at once (called by ``operations.upgrades`` before each migration).

A migration may still run when its operation row is ``running`` (another live process) or when a helper container
of an earlier migration still exists: after a crash, the row is closed (``operations.recovery``) but Docker keeps
running the helper. Either way the migration is not started; ``TransientError`` postpones the upgrade, and a later
pass (retried with backoff) starts it once the other one is over. The helper is not killed: stopping a migration
half-way is worse than waiting for it.
"""

from __future__ import annotations

from sqlalchemy import Engine

from desired_state.operations import running_operation
from reconciler.core.errors import TransientError
from reconciler.drivers.docker import DockerDriver
from reconciler.runtime.operations.common import helper_labels, helper_name
from renderers.containers import Naming

# States of a container that is over: its command will not do anything any more.
_OVER = ("exited", "dead")


def refuse_concurrent_migration(
    engine: Engine, docker: DockerDriver, naming: Naming, tenant: str, service: str
) -> None:
    running = running_operation(engine, tenant, "migrate", service=service)
    if running is not None:
        raise TransientError(
            f"tenant {tenant!r}: migration of {service} not started: migration operation {running.id} "
            f"(to {running.to_image}) is still running; the upgrade waits for it",
            tenant=tenant,
        )
    # Helper names are "<prefix>-<tenant>-<service>-migrate-<random>" (``common.helper_name``).
    prefix = helper_name(naming, tenant, f"{service}-migrate").rsplit("-", 1)[0] + "-"
    alive = [
        (name, state)
        for name, state in docker.helpers(helper_labels(naming, tenant, "migrate"), prefix)
        if state not in _OVER
    ]
    if alive:
        names = ", ".join(f"{name} ({state})" for name, state in alive)
        raise TransientError(
            f"tenant {tenant!r}: migration of {service} not started: the helper container of an earlier migration "
            f"still exists ({names}) and may still be migrating; the upgrade waits until it is gone",
            tenant=tenant,
        )

"""What every request of the API works with: the store, the settings, the nudge publisher and (built on first use)
the runtime whose planning path previews plans and whose Docker driver reads containers' logs.

Built once by ``api.app.create_app`` and handed to the routers through ``request.app.state``; nothing here runs at
import time. The nudge is published after the write's transaction committed, like the web UI does
(docs/messages.md); a broker that does not answer never fails the write, it only means the resync picks it up.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.engine import Engine

from reconciler.runtime.settings import Settings

if TYPE_CHECKING:
    from reconciler.runtime.wiring import Runtime

log = logging.getLogger("reconciler.api")


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    session_secret: str
    _runtime: Runtime | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def runtime(self) -> Runtime:
        """The runtime ``reconciler plan`` would build (no scheduler, no jobs): its reconciler plans previews."""
        with self._lock:
            if self._runtime is None:
                from reconciler.runtime.wiring import build_runtime

                self._runtime = build_runtime(self.settings, schedule=False)
            return self._runtime

    def nudge(self, tenant: str | None, requested_by: str, reason: str) -> bool:
        """Publish "reconcile ``tenant`` now" (None: every tenant); False when no broker is configured or it did
        not take the nudge."""
        url = self.settings.rabbitmq_url
        if not url:
            return False
        from reconciler.runtime.service.nudges import Nudge, Topology, nudge_publisher, where

        topology = Topology(self.settings.rabbitmq_exchange, self.settings.rabbitmq_queue)
        try:
            with nudge_publisher(url, topology) as publisher:
                publisher.publish(Nudge(tenant=tenant, reason=reason, requested_by=requested_by))
        except Exception as exc:  # the write is committed; the periodic resync converges it anyway
            log.warning("nudge for tenant=%s not sent to RabbitMQ at %s: %s", tenant, where(url), type(exc).__name__)
            return False
        return True

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.engine.dispose()
        self.engine.dispose()


def context_of(request: Request) -> ApiContext:
    context = request.app.state.context
    assert isinstance(context, ApiContext)
    return context

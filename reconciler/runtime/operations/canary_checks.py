"""The canary analysis's checks: the service's checks sent to the canary version alone, each window.

Called by ``runtime.operations.canary`` for a canary in the traffic split (weight above 0) of a service with checks.
Each check goes through Traefik's web entrypoint (``RECONCILER_CHECK_URL``, as ``runtime.checks`` sends them) with
the route's host and the version header of the routes renderer (``renderers.traefik_versions``), so the
version's own router answers, not the weighted split that mixes both versions. The results are judged by
``core.checks.evaluate`` and weighed into the window's verdict by ``core.canary_checks``; they are not written to
``tenant_checks`` (whose latest row per check is the route's verdict, ``ChecksPassing``): a failure is in the
canary's reason, its history row and its alert.

A version with no ready backend has no router of its own, and its request would reach the split instead; the
analysis only asks while the canary has a positive weight, and passing checks never promote alone (the metrics of
the canary's own Traefik service must say healthy), so such a request cannot promote a canary that serves nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from desired_state.specs import ServiceSpec
from reconciler.core.checks import Check, CheckResult, Response, evaluate
from reconciler.runtime.checks.probe import send
from renderers.traefik_versions import VERSION_HEADER, version_label

log = logging.getLogger("reconciler.canary")

Send = Callable[[str, str, Check, Mapping[str, str]], Response]
# What these results say in ``CheckResult.trigger`` (and in the log).
TRIGGER = "canary"


@dataclass
class CanaryChecker:
    # Traefik's web entrypoint as clients reach it (``RECONCILER_CHECK_URL``), e.g. http://127.0.0.1:80.
    base_url: str
    send: Send = send

    def run(self, tenant: str, service: ServiceSpec, track: str, image: str) -> list[CheckResult]:
        """Every check of ``service`` against its version on ``track`` (``image``); none without a route."""
        if service.route is None or not service.checks:
            return []
        header = {VERSION_HEADER: version_label(track)}
        results = []
        for check in service.checks:
            response = self.send(self.base_url, service.route.host, check, header)
            outcome, detail = evaluate(check, response)
            result = CheckResult(tenant, service.name, check.name, image, outcome, response.latency, detail, TRIGGER)
            if result.failed:
                log.warning("tenant=%s canary check %s", tenant, result.describe())
            results.append(result)
        return results

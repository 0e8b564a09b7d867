"""The routers that pin a request to one version of a two-version service (pure, part of rendering routes).

Called by ``renderers.traefik.render_routes`` for every service with two versions: besides the service's router to
the weighted split, each version in the split gets a router of its own whose rule adds
``Header(`X-Reconciler-Version`, `a`)`` (or ``b``) to the service's rule and that sends to that version's load
balancer alone, with the same middlewares. Its longer rule gives it Traefik's higher default priority, so a
request carrying the header reaches that version whatever the weights. The canary analysis sends the service's
checks this way (``runtime.operations.canary_checks``) to judge the canary version alone; a version out of the
split (weight 0, no ready backend) has no such router, and the route's readiness does not count these routers
(``core.routes.verify``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# The request header that pins a request to one version of a two-version service (value: the version's label).
VERSION_HEADER = "X-Reconciler-Version"


def version_label(track: str) -> str:
    """The first track's label is empty; it is called ``a`` in names and in the version header."""
    return track or "a"


def version_rule(service_rule: str, track: str) -> str:
    # Tracks are "" or one lowercase letter (desired_state.inputs.VERSION_TRACKS): nothing to escape.
    return f"{service_rule} && Header(`{VERSION_HEADER}`, `{version_label(track)}`)"


def version_routers(
    service_rule: str, members: Iterable[tuple[str, str]], entrypoint: str, middlewares: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """One router per (track, Traefik service of that version) in the split, named like that service."""
    return {
        member: {
            "rule": version_rule(service_rule, track),
            "entryPoints": [entrypoint],
            "service": member,
            "middlewares": list(middlewares),
        }
        for track, member in members
    }

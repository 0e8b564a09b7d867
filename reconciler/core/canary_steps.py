"""Canary analysis, what a verdict does: the canary's state, the next promotion step, the weights it imposes.

Pure. The analysis job (``runtime.operations.canary``) keeps one ``Canary`` per tenant service with two versions
(table ``tenant_canaries``, ``desired_state.canaries``) and moves it with ``advance`` after each window. The
planner is given the ``WeightOverride`` of every canary (``planning.canary``) the way it is given pins: the
route of that service is rendered with those weights instead of the database's, and the route change says why.

States: ``analysing`` (no stepped promotion: the database's weights hold; only a back-out changes them),
``promoting`` (stepped promotion: the canary gets ``weight`` percent, the stable version the rest),
``promoted`` (the last step, 100 %: the stable version gets no traffic until the operator finishes the upgrade by
setting the service's image), ``backed-out`` (weight 0: every request goes to the stable version). The last two
are final for that pair of images; a new pair starts a new canary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from reconciler.core.canary import Verdict

CanaryState = Literal["analysing", "promoting", "promoted", "backed-out"]
# What one window did to a canary, for the history and the alert.
Event = Literal["promoted-step", "promoted", "backed-out"]
FINAL_STATES: frozenset[str] = frozenset({"promoted", "backed-out"})


def check_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """Promotion steps are canary percentages, rising, ending at 100 (``10, 25, 50, 100``); empty: no promotion."""
    values = tuple(steps)
    if not values:
        return ()
    if any(not 1 <= s <= 100 for s in values) or list(values) != sorted(set(values)) or values[-1] != 100:
        raise ValueError(
            f"steps = {list(values)!r}: rising percentages from 1 to 100 ending at 100, such as 10,25,50,100"
        )
    return values


@dataclass(frozen=True)
class Canary:
    """The analysis state of one tenant service's second version (``canary_image``) beside ``stable_image``.

    ``weight``: the canary's share in percent that the analysis imposes (None: the database's weights hold);
    ``step``: the index of that share in the promotion steps; ``reason``: the last window's verdict in words.
    """

    tenant: str
    service: str
    stable_image: str
    canary_image: str
    state: CanaryState
    weight: int | None = None
    step: int = 0
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def same_pair(self, stable_image: str, canary_image: str) -> bool:
        return (self.stable_image, self.canary_image) == (stable_image, canary_image)


def begin(tenant: str, service: str, stable_image: str, canary_image: str, steps: Sequence[int]) -> Canary:
    """A new canary: at the first promotion step when there are steps, else under the database's weights."""
    if steps:
        return Canary(tenant, service, stable_image, canary_image, "promoting", weight=steps[0], step=0)
    return Canary(tenant, service, stable_image, canary_image, "analysing")


def advance(canary: Canary, verdict: Verdict, steps: Sequence[int]) -> tuple[Canary, Event | None]:
    """The canary after one window's verdict, and what happened (None: nothing worth a history row)."""
    if canary.final:
        return canary, None
    if verdict.outcome == "failing":
        return replace(canary, state="backed-out", weight=0, reason=verdict.reason), "backed-out"
    if verdict.outcome == "inconclusive" or canary.state != "promoting" or not steps:
        return replace(canary, reason=verdict.reason), None
    following = canary.step + 1
    if following >= len(steps):  # steps changed under a running canary: the last one is 100 %
        following = len(steps) - 1
    weight = steps[following]
    if weight >= 100:
        return replace(canary, state="promoted", weight=100, step=following, reason=verdict.reason), "promoted"
    return replace(canary, weight=weight, step=following, reason=verdict.reason), "promoted-step"


@dataclass(frozen=True)
class WeightOverride:
    """Weights the analysis imposes on one tenant service's two versions, while they are these two images."""

    service: str
    stable_image: str
    canary_image: str
    stable_weight: int
    canary_weight: int
    reason: str


def override_of(canary: Canary) -> WeightOverride | None:
    """The weights a canary imposes on routing (None: the database's weights hold)."""
    if canary.state == "analysing" or canary.weight is None:
        return None
    if canary.state == "backed-out":
        why = f"canary {canary.canary_image} of {canary.service} backed out: {canary.reason}"
        return WeightOverride(canary.service, canary.stable_image, canary.canary_image, 100, 0, why)
    if canary.state == "promoted":
        why = f"canary {canary.canary_image} of {canary.service} promoted to 100%"
        return WeightOverride(canary.service, canary.stable_image, canary.canary_image, 0, 100, why)
    why = f"canary {canary.canary_image} of {canary.service} at {canary.weight}% (promotion step {canary.step + 1})"
    return WeightOverride(
        canary.service, canary.stable_image, canary.canary_image, 100 - canary.weight, canary.weight, why
    )

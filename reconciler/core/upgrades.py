"""Upgrades and pins as plain values (pure).

An *upgrade* is the set of replacements in a plan that change the image of one tenant service: the executor hands
them to the runtime's upgrade gate (``operations.upgrades``), which takes a backup and runs the catalog's migration
before the new version starts. A *pin* is what a failed upgrade leaves behind: the service stays on its old image
while the desired image is still the one that failed (``core.policies.pinned``); a new desired image clears it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.plan import Action, Change
from reconciler.core.resources import LABEL_IMAGE, Container


@dataclass(frozen=True)
class Upgrade:
    """One tenant service moving from one image to another in this pass."""

    tenant: str
    service: str
    old_image: str
    new_image: str

    def describe(self) -> str:
        return f"{self.tenant}/{self.service} {self.old_image} -> {self.new_image}"


@dataclass(frozen=True)
class Pin:
    """``service`` of ``tenant`` stays on ``pinned_image`` while ``failed_image`` is what the database asks for."""

    tenant: str
    service: str
    pinned_image: str
    failed_image: str
    reason: str


def image_of(container: Container) -> str:
    """The image reference a container was created from (the list API may report a digest instead)."""
    return dict(container.labels).get(LABEL_IMAGE) or container.image


def upgrades_in(changes: Iterable[Change]) -> dict[Upgrade, tuple[Change, ...]]:
    """Replacements that change a container's image, grouped by tenant service and target image.

    A replacement for another reason (env, limits, a vanished network) is not an upgrade: no backup, no migration.
    """
    groups: dict[Upgrade, list[Change]] = defaultdict(list)
    for change in changes:
        old, new = change.before, change.after
        if change.action is not Action.REPLACE or not isinstance(old, Container) or not isinstance(new, Container):
            continue
        if image_of(old) == new.image:
            continue
        groups[Upgrade(change.tenant, new.service, image_of(old), new.image)].append(change)
    # Several old images (a half-finished earlier upgrade) for one target: one upgrade, named after the first.
    merged: dict[tuple[str, str, str], Upgrade] = {}
    result: dict[Upgrade, tuple[Change, ...]] = {}
    for upgrade in sorted(groups, key=lambda u: (u.tenant, u.service, u.new_image, u.old_image)):
        key = (upgrade.tenant, upgrade.service, upgrade.new_image)
        first = merged.setdefault(key, upgrade)
        result[first] = (*result.get(first, ()), *groups[upgrade])
    return result


def split_pins(
    pins: Iterable[Pin],
    desired_images: Mapping[tuple[str, str], frozenset[str]],
    keep_tenants: frozenset[str] = frozenset(),
) -> tuple[dict[str, tuple[Pin, ...]], tuple[Pin, ...]]:
    """Active pins by tenant, and stale pins (to delete).

    ``desired_images`` maps (tenant, service) to the images the database asks for (one per version track).
    A pin stays active only while the failed image is still among them; a new desired image, or a service or
    tenant that is gone, makes it stale. Tenants in ``keep_tenants`` (invalid in the database: we cannot tell
    what they want) keep their pins.
    """
    active: dict[str, list[Pin]] = defaultdict(list)
    stale: list[Pin] = []
    for pin in pins:
        if pin.tenant in keep_tenants or pin.failed_image in desired_images.get((pin.tenant, pin.service), frozenset()):
            active[pin.tenant].append(pin)
        else:
            stale.append(pin)
    return {tenant: tuple(found) for tenant, found in active.items()}, tuple(stale)


def pin_for(pins: Sequence[Pin], container: Container) -> Pin | None:
    """The pin that holds this (desired) container back: same service, and it would run the failed image."""
    return next((p for p in pins if p.service == container.service and p.failed_image == container.image), None)

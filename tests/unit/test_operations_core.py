"""Unit tests for the pure parts of tenant operations: upgrade detection, pins and the pinned policy, retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from reconciler.core.plan import Action, Change, Plan
from reconciler.core.policies import pinned
from reconciler.core.resources import LABEL_IMAGE, Container
from reconciler.core.retention import BackupEntry, to_prune
from reconciler.core.upgrades import Pin, Upgrade, split_pins, upgrades_in

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _container(tenant: str, service: str, replica: int, image: str, spec_hash: str = "h1") -> Container:
    return Container(
        name=f"erp-{tenant}-{service}-{replica}-{spec_hash}",
        tenant=tenant,
        service=service,
        replica=replica,
        image=image,
        spec_hash=spec_hash,
        network=f"erp-{tenant}",
        volume=f"erp-{tenant}-data",
        port=8080,
        labels=((LABEL_IMAGE, image),),
    )


def _replace(tenant: str, service: str, replica: int, old: str, new: str) -> Change:
    before = _container(tenant, service, replica, old, "h1")
    after = _container(tenant, service, replica, new, "h2")
    return Change(
        Action.REPLACE, "container", tenant, after.name, "image", before=before, after=after, operation="replace"
    )


def _create(tenant: str, service: str, replica: int, image: str) -> Change:
    after = _container(tenant, service, replica, image, "h2")
    return Change(Action.CREATE, "container", tenant, after.name, "missing", after=after)


PIN = Pin("acme", "a", pinned_image="erp/demo-svc:1", failed_image="erp/demo-svc:2", reason="migration failed")


class TestUpgradesIn:
    def test_groups_replicas_of_one_service_into_one_upgrade(self) -> None:
        changes = [
            _replace("acme", "a", 0, "erp/demo-svc:1", "erp/demo-svc:2"),
            _replace("acme", "a", 1, "erp/demo-svc:1", "erp/demo-svc:2"),
        ]
        found = upgrades_in(changes)
        assert list(found) == [Upgrade("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2")]
        assert found[Upgrade("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2")] == tuple(changes)

    def test_a_replacement_for_env_or_limits_is_not_an_upgrade(self) -> None:
        assert upgrades_in([_replace("acme", "a", 0, "erp/demo-svc:1", "erp/demo-svc:1")]) == {}

    def test_the_image_label_wins_over_the_reported_image(self) -> None:
        change = _replace("acme", "a", 0, "erp/demo-svc:1", "erp/demo-svc:2")
        assert isinstance(change.before, Container)
        digest_reported = replace(change.before, image="sha256:abcdef")
        found = upgrades_in([replace(change, before=digest_reported)])
        assert [u.old_image for u in found] == ["erp/demo-svc:1"]

    def test_mixed_old_images_towards_one_target_are_one_upgrade(self) -> None:
        changes = [
            _replace("acme", "a", 0, "erp/demo-svc:1", "erp/demo-svc:3"),
            _replace("acme", "a", 1, "erp/demo-svc:2", "erp/demo-svc:3"),
        ]
        found = upgrades_in(changes)
        assert len(found) == 1 and len(next(iter(found.values()))) == 2

    def test_creates_and_deletes_are_not_upgrades(self) -> None:
        assert upgrades_in([_create("acme", "a", 0, "erp/demo-svc:2")]) == {}


class TestPins:
    def test_a_pin_holds_while_the_failed_image_is_desired(self) -> None:
        active, stale = split_pins([PIN], {("acme", "a"): frozenset({"erp/demo-svc:2"})})
        assert active == {"acme": (PIN,)} and stale == ()

    def test_a_new_desired_image_clears_the_pin(self) -> None:
        active, stale = split_pins([PIN], {("acme", "a"): frozenset({"erp/demo-svc:3"})})
        assert active == {} and stale == (PIN,)

    def test_a_deleted_tenant_clears_its_pins_but_an_invalid_one_keeps_them(self) -> None:
        assert split_pins([PIN], {}) == ({}, (PIN,))
        assert split_pins([PIN], {}, keep_tenants=frozenset({"acme"})) == ({"acme": (PIN,)}, ())

    def test_pinned_withholds_the_replacement_towards_the_failed_image_only(self) -> None:
        upgrade = _replace("acme", "a", 0, "erp/demo-svc:1", "erp/demo-svc:2")
        other_service = _replace("acme", "b", 0, "erp/demo-svc:1", "erp/demo-svc:2")
        other_tenant = _replace("globex", "a", 0, "erp/demo-svc:1", "erp/demo-svc:2")
        result = pinned(Plan.of([upgrade, other_service, other_tenant]), {"acme": (PIN,)})
        assert set(result.changes) == {other_service, other_tenant}
        assert [r.change for r in result.refused] == [upgrade]
        assert result.refused[0].policy == "pinned"
        assert "migration failed" in result.refused[0].reason and "erp/demo-svc:1" in result.refused[0].reason

    def test_towards_another_image_the_replacement_passes(self) -> None:
        change = _replace("acme", "a", 0, "erp/demo-svc:1", "erp/demo-svc:3")
        assert pinned(Plan.of([change]), {"acme": (PIN,)}).changes == (change,)

    def test_a_missing_replica_is_created_from_the_pinned_image(self) -> None:
        result = pinned(Plan.of([_create("acme", "a", 1, "erp/demo-svc:2")]), {"acme": (PIN,)})
        (change,) = result.changes
        assert isinstance(change.after, Container)
        assert change.after.image == "erp/demo-svc:1"
        assert dict(change.after.labels)[LABEL_IMAGE] == "erp/demo-svc:1"
        assert change.after.spec_hash == "h2"  # the desired hash: the next pass sees nothing to do
        assert "pinned to erp/demo-svc:1" in change.reason

    def test_no_pins_is_the_same_plan(self) -> None:
        plan = Plan.of([_replace("acme", "a", 0, "erp/demo-svc:1", "erp/demo-svc:2")])
        assert pinned(plan, {}) is plan


class TestRetention:
    def _backups(self, statuses: list[str]) -> list[BackupEntry]:
        return [BackupEntry(i + 1, status, T0 + timedelta(minutes=i)) for i, status in enumerate(statuses)]

    def test_keeps_the_newest_k_succeeded(self) -> None:
        backups = self._backups(["succeeded"] * 5)
        assert sorted(to_prune(backups, keep=2)) == [1, 2, 3]

    def test_failed_and_pruned_backups_do_not_count(self) -> None:
        backups = self._backups(["succeeded", "failed", "succeeded", "pruned", "failed"])
        assert to_prune(backups, keep=2) == []
        assert to_prune(backups, keep=1) == [1]

    def test_the_newest_is_kept_even_with_keep_zero(self) -> None:
        assert sorted(to_prune(self._backups(["succeeded"] * 3), keep=0)) == [1, 2]

    def test_protected_backups_survive(self) -> None:
        assert sorted(to_prune(self._backups(["succeeded"] * 4), keep=1, protected=frozenset({1}))) == [2, 3]

    def test_equal_timestamps_fall_back_to_the_id(self) -> None:
        backups = [BackupEntry(i, "succeeded", T0) for i in (3, 1, 2)]
        assert sorted(to_prune(backups, keep=1)) == [1, 2]

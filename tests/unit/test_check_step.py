"""The check step's choices (``passes.check_step``) and the schedule's image choice (``checks.schedule``): which
services are checked after a pass, with which image, and which upgrades a failing check takes back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from desired_state.pins import PinRecord
from desired_state.specs import ServiceSpec, TenantSpec, build_tenant, parse_catalog
from reconciler.core.checks import CheckResult
from reconciler.core.plan import Action, Change
from reconciler.core.resources import LABEL_IMAGE, Container
from reconciler.core.upgrades import Upgrade
from reconciler.runtime.checks.schedule import serving_images
from reconciler.runtime.passes.check_step import rollout_targets, to_revert, triggers

CATALOG = parse_catalog(
    {
        "a": {"image": "erp/demo-svc:1", "public": True, "checks": [{"name": "home", "path": "/"}]},
        "b": {"image": "erp/demo-svc:1"},
    }
)


def spec(a: dict[str, object] | None = None) -> TenantSpec:
    return build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"a": a or {}, "b": {}}}, CATALOG)


def container(name: str, service: str, image: str, state: str = "running") -> Container:
    return Container(
        name=name,
        tenant="acme",
        service=service,
        replica=0,
        image=image,
        spec_hash="h",
        network="n",
        volume="v",
        port=8080,
        state=state,
        labels=((LABEL_IMAGE, image),),
    )


@dataclass
class Checks:
    rollback: bool = True
    rolled: list[Upgrade] = field(default_factory=list)

    def rolls_back(self, service: ServiceSpec) -> bool:
        return self.rollback if service.checks_rollback is None else service.checks_rollback

    def run(
        self, spec: TenantSpec, images: Mapping[str, str], trigger: Mapping[str, str]
    ) -> dict[str, list[CheckResult]]:
        return {}

    def settle(self, tenant: str, results: Mapping[str, Iterable[CheckResult]], handed: Iterable[str] = ()) -> bool:
        return False

    def rolled_back(self, upgrade: Upgrade) -> None:
        self.rolled.append(upgrade)


def failed(service: str = "a") -> CheckResult:
    return CheckResult("acme", service, "home", "erp/demo-svc:2", "failed", 0.01, "status 500, expected 200", "upgrade")


def test_only_services_with_new_containers_checks_and_a_route_are_checked() -> None:
    new = container("acme-a-1", "a", "erp/demo-svc:2")
    other = container("acme-b-1", "b", "erp/demo-svc:2")  # b has no checks
    routed = [new, other, container("acme-a-0", "a", "erp/demo-svc:1")]
    assert rollout_targets(spec(), {new.name: new, other.name: other}, routed) == {"a": "erp/demo-svc:1+erp/demo-svc:2"}
    assert rollout_targets(spec({"checks": []}), {new.name: new}, routed) == {}
    assert rollout_targets(spec(), {}, routed) == {}
    upgrade = Upgrade("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2")
    assert triggers(["a", "b"], [upgrade]) == {"a": "upgrade", "b": "rollout"}


def replacement(old_name: str = "acme-a-0", old_state: str = "running") -> Change:
    old = container(old_name, "a", "erp/demo-svc:1", old_state)
    new = container("acme-a-1", "a", "erp/demo-svc:2")
    return Change(
        action=Action.REPLACE,
        kind="container",
        tenant="acme",
        name=new.name,
        reason="image",
        before=old,
        after=new,
        operation="replace",
    )


def test_a_failing_check_takes_back_an_upgrade_only_when_rollback_is_on_and_possible() -> None:
    upgrade = Upgrade("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2")
    passed = {upgrade: (replacement(),)}
    reverts = to_revert(spec(), passed, {"a": [failed()]}, Checks())
    assert list(reverts) == [upgrade] and reverts[upgrade].startswith("checks failed after the upgrade: 1 of 1")
    assert to_revert(spec(), passed, {"a": []}, Checks()) == {}
    assert to_revert(spec(), passed, {"a": [failed()]}, Checks(rollback=False)) == {}
    # The old container is gone (same name, or not running): there is nothing to go back to.
    assert to_revert(spec(), {upgrade: (replacement("acme-a-1"),)}, {"a": [failed()]}, Checks()) == {}
    assert to_revert(spec(), {upgrade: (replacement(old_state="exited"),)}, {"a": [failed()]}, Checks()) == {}


def test_the_catalog_entry_overrides_the_rollback_setting() -> None:
    catalog = parse_catalog(
        {
            "a": {
                "image": "erp/demo-svc:1",
                "public": True,
                "checks_rollback": False,
                "checks": [{"name": "home", "path": "/"}],
            }
        }
    )
    tenant = build_tenant({"name": "acme", "domain": "acme.erp.test", "services": {"a": {}}}, catalog)
    upgrade = Upgrade("acme", "a", "erp/demo-svc:1", "erp/demo-svc:2")
    assert to_revert(tenant, {upgrade: (replacement(),)}, {"a": [failed()]}, Checks(rollback=True)) == {}


def pin(failed_image: str) -> PinRecord:
    return PinRecord(1, "acme", "a", "erp/demo-svc:1", failed_image, "why", None, None, datetime.now(UTC))


def test_a_scheduled_check_records_the_image_that_serves() -> None:
    upgraded = spec({"image": "erp/demo-svc:2"})
    assert serving_images(upgraded, []) == {"a": "erp/demo-svc:2"}
    assert serving_images(upgraded, [pin("erp/demo-svc:2")]) == {"a": "erp/demo-svc:1"}
    assert serving_images(upgraded, [pin("erp/demo-svc:3")]) == {"a": "erp/demo-svc:2"}
    two = spec({"versions": [{"image": "erp/demo-svc:1", "weight": 90}, {"image": "erp/demo-svc:2", "weight": 10}]})
    assert serving_images(two, []) == {"a": "erp/demo-svc:1+erp/demo-svc:2"}
    assert serving_images(spec({"replicas": 0}), []) == {}

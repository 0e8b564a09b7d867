"""The identity step of ``plan_pass`` (``reconciler.planning.identity``): whose data volume is this (pure)."""

from __future__ import annotations

from desired_state.model import DesiredState, VolumeBinding
from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.resources import Snapshot, Volume
from reconciler.planning import Observed, PassContext, PlanSettings, plan_pass
from reconciler.planning.identity import check_identities
from renderers.containers import Naming

NAMING = Naming(prefix="erp", owner="unit")
CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1"}})
VOLUME = "erp-acme-data"


def desired(uid: str | None, state: str = "running") -> DesiredState:
    spec = build_tenant({"name": "acme", "domain": "acme.erp.test", "state": state, "services": {"a": {}}}, CATALOG)
    return DesiredState(catalog=CATALOG, tenants={"acme": spec}, errors={}, uids={"acme": uid} if uid else {})


def seen(uid: str | None = None) -> Snapshot:
    return Snapshot(volumes=(Volume(VOLUME, "acme", uid=uid),))


def bound(uid: str, state: str = "bound") -> dict[str, VolumeBinding]:
    return {VOLUME: VolumeBinding(VOLUME, "acme", uid, state)}  # type: ignore[arg-type]


def test_a_volume_bound_to_another_uid_holds_the_tenant() -> None:
    check = check_identities(desired("new"), seen(), bound("old"), NAMING)
    assert check.held["acme"].reason == "ForeignData" and "uid old" in check.held["acme"].message
    assert check.bind == ()


def test_without_a_binding_the_volume_label_decides() -> None:
    assert check_identities(desired("new"), seen("old"), {}, NAMING).held["acme"].reason == "ForeignData"
    assert check_identities(desired("old"), seen("old"), {}, NAMING).held == {}


def test_a_plan_without_a_uid_yet_plans_a_new_uid_which_matches_no_data() -> None:
    assert check_identities(desired(None), seen(), bound("old"), NAMING).held["acme"].reason == "ForeignData"
    fresh = check_identities(desired(None), Snapshot(), {}, NAMING)
    assert fresh.held == {} and fresh.bind == ()


def test_a_bound_volume_gone_from_docker_is_lost_not_recreated() -> None:
    check = check_identities(desired("u1"), Snapshot(), bound("u1"), NAMING)
    assert check.held["acme"].reason == "DataVolumeLost"
    assert "reconciler tenants recreate-volume acme --yes" in check.held["acme"].message


def test_a_pending_binding_without_its_volume_is_created_again() -> None:
    check = check_identities(desired("u1"), Snapshot(), bound("u1", "pending"), NAMING)
    assert check.held == {} and check.bind == ()


def test_bindings_to_record_new_seen_and_legacy() -> None:
    (new,) = check_identities(desired("u1"), Snapshot(), {}, NAMING).bind
    assert (new.uid, new.state, new.legacy) == ("u1", "pending", False)
    (seen_now,) = check_identities(desired("u1"), seen("u1"), bound("u1", "pending"), NAMING).bind
    assert (seen_now.state, seen_now.legacy) == ("bound", False)
    (legacy,) = check_identities(desired("u1"), seen(None), {}, NAMING).bind
    assert (legacy.state, legacy.legacy) == ("bound", True)
    assert check_identities(desired("u1"), seen("u1"), bound("u1"), NAMING).bind == ()


def test_an_absent_tenant_keeps_no_volume_and_is_not_checked() -> None:
    assert check_identities(desired("new", "absent"), seen(), bound("old"), NAMING).held == {}


def test_plan_pass_holds_a_tenant_on_every_layer_and_says_why() -> None:
    result = plan_pass(
        desired("new"),
        Observed(snapshot=seen()),
        PlanSettings(naming=NAMING),
        PassContext(bindings=bound("old")),
    )
    assert result.plan.changes == ()
    (blocked,) = result.plan.blocked
    assert (blocked.tenant, blocked.kind, blocked.reason) == ("acme", "volume", "ForeignData")
    assert result.bindings == ()


def test_plan_pass_labels_what_it_creates_with_the_uid_and_asks_for_a_binding() -> None:
    result = plan_pass(desired("u1"), Observed(snapshot=Snapshot()), PlanSettings(naming=NAMING))
    created = {c.kind: c.after for c in result.plan.changes}
    assert getattr(created["volume"], "uid", None) == "u1" and getattr(created["network"], "uid", None) == "u1"
    container = created["container"]
    assert ("tenant-reconciler.tenant-uid", "u1") in getattr(container, "labels", ())
    assert [(b.volume, b.state) for b in result.bindings] == [(VOLUME, "pending")]
    scoped = plan_pass(
        desired("u1"), Observed(snapshot=Snapshot()), PlanSettings(naming=NAMING), PassContext(scope=frozenset())
    )
    assert scoped.bindings == ()

"""Two versions of a service run side by side as tracks: rendering, diffing and observing keep them apart."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from desired_state.specs import build_tenant, parse_catalog
from reconciler.core.diff import diff
from reconciler.core.plan import Action
from reconciler.core.resources import LABEL_TRACK, Container, DesiredTenant, Network, Snapshot, Volume
from reconciler.drivers.docker.inspect import container_from_list
from renderers.containers import Naming, render_tenant

CATALOG = parse_catalog({"a": {"image": "erp/demo-svc:1", "public": True}})
NAMING = Naming(prefix="erp", owner="test")


def render(services: dict[str, Any]) -> DesiredTenant:
    spec = build_tenant({"name": "acme", "domain": "acme.erp.test", "services": services}, CATALOG)
    return render_tenant(spec, NAMING)


def running(desired: DesiredTenant) -> Snapshot:
    """What the engine would report after applying ``desired``."""
    assert desired.network is not None and desired.volume is not None
    containers = tuple(replace(c, networks=(c.network,), ip="10.0.0.2", env=None) for c in desired.containers)
    return Snapshot(
        containers=containers,
        networks=(replace(desired.network, subnet="10.213.0.0/26"),),
        volumes=(desired.volume,),
    )


TWO_VERSIONS = {
    "a": {
        "versions": [
            {"image": "erp/demo-svc:1", "replicas": 2, "weight": 50},
            {"image": "erp/demo-svc:2", "weight": 50},
        ]
    }
}


def test_versions_render_one_container_set_per_track() -> None:
    desired = render(TWO_VERSIONS)
    assert [(c.track, c.replica, c.image) for c in desired.containers] == [
        ("", 0, "erp/demo-svc:1"),
        ("", 1, "erp/demo-svc:1"),
        ("b", 0, "erp/demo-svc:2"),
    ]
    second = desired.containers[2]
    assert second.name.startswith("erp-acme-a-b-0-")
    assert dict(second.labels)[LABEL_TRACK] == "b"
    assert LABEL_TRACK not in dict(desired.containers[0].labels)
    assert len({c.slot for c in desired.containers}) == 3


def test_first_track_keeps_names_so_adding_a_version_only_creates() -> None:
    single = render({"a": {"replicas": 2}})
    plan = diff({"acme": render(TWO_VERSIONS)}, running(single))
    assert [(c.action, c.after.track if isinstance(c.after, Container) else None) for c in plan.changes] == [
        (Action.CREATE, "b")
    ]


def test_dropping_the_second_version_deletes_its_track_only() -> None:
    plan = diff({"acme": render({"a": {"replicas": 2}})}, running(render(TWO_VERSIONS)))
    assert [(c.action, c.name.startswith("erp-acme-a-b-0-")) for c in plan.changes] == [(Action.DELETE, True)]
    assert "track b" in plan.changes[0].reason


def test_promoting_the_second_image_replaces_the_first_track() -> None:
    plan = diff({"acme": render({"a": {"image": "erp/demo-svc:2", "replicas": 2}})}, running(render(TWO_VERSIONS)))
    actions = sorted((c.action.name, c.reason) for c in plan.changes)
    assert actions == [
        ("DELETE", "version track b of a no longer configured"),
        ("REPLACE", "image erp/demo-svc:1 -> erp/demo-svc:2"),
        ("REPLACE", "image erp/demo-svc:1 -> erp/demo-svc:2"),
    ]


def test_applied_versions_plan_nothing() -> None:
    desired = render(TWO_VERSIONS)
    assert diff({"acme": desired}, running(desired)).empty


def test_docker_observe_reads_the_track_label() -> None:
    desired = render(TWO_VERSIONS).containers[2]
    raw = {
        "Names": [f"/{desired.name}"],
        "Image": desired.image,
        "State": "running",
        "Status": "Up 2 seconds",
        "Labels": dict(desired.labels),
        "NetworkSettings": {"Networks": {"erp-acme": {"IPAddress": "10.213.0.5"}}},
    }
    observed = container_from_list(raw)
    assert observed.slot == desired.slot
    assert observed.ip == "10.213.0.5"


def test_network_and_volume_untouched_by_tracks() -> None:
    desired = render(TWO_VERSIONS)
    assert desired.network == Network(name="erp-acme", tenant="acme")
    assert desired.volume == Volume(name="erp-acme-data", tenant="acme")

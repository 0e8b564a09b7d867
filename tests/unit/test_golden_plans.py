"""Golden plan cases: each file in tests/golden/plans holds what runs now (``applied`` plus mutations of the
world), what the database says (``desired``) and the expected ``reconciler plan`` text. One runner for all.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/unit/test_golden_plans.py`` and review
the diff of the golden files like code.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from desired_state.specs import SpecError, build_tenant, parse_catalog
from reconciler.core.diff import diff
from reconciler.core.policies import MassDeleteLimits, mass_delete_guard, ownership
from reconciler.core.render_plan import render_text
from reconciler.core.resources import Container, DesiredTenant, Network, Snapshot
from renderers.containers import Naming, render_tenant


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so golden plans read like the CLI output they are."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)

CASES = sorted((Path(__file__).parent.parent / "golden" / "plans").glob("*.yaml"))
NAMING = Naming(prefix="erp", owner="golden")


def _render(
    catalog_raw: dict[str, Any], tenants_raw: list[dict[str, Any]]
) -> tuple[dict[str, DesiredTenant], set[str]]:
    catalog = parse_catalog(catalog_raw)
    rendered: dict[str, DesiredTenant] = {}
    invalid: set[str] = set()
    for raw in tenants_raw:
        try:
            spec = build_tenant(raw, catalog)
        except SpecError:
            invalid.add(str(raw.get("name")))
            continue
        rendered[spec.name] = render_tenant(spec, NAMING)
    return rendered, invalid


def _observed(case: dict[str, Any]) -> Snapshot:
    applied, _ = _render(case["catalog"], case.get("applied", []))
    world = case.get("world", {})
    states: dict[str, str] = world.get("states", {})
    removed: set[str] = set(world.get("removed_containers", []))
    missing_networks: set[str] = set(world.get("removed_networks", []))
    containers: list[Container] = []
    networks: list[Network] = []
    for tenant in applied.values():
        if tenant.network and tenant.tenant not in missing_networks:
            networks.append(replace(tenant.network, subnet=f"10.213.{len(networks)}.0/26"))
        for want in tenant.containers:
            slot = f"{want.tenant}-{want.service}-{want.replica}"
            if slot in removed:
                continue
            state = states.get(slot, "running" if want.state == "running" else "exited")
            attached = () if tenant.tenant in missing_networks else (want.network,)
            containers.append(replace(want, state=state, networks=attached, env=None, memory=None, cpus=None))
    for extra in world.get("extra_containers", []):
        containers.append(
            Container(
                name=extra["name"],
                tenant=extra["tenant"],
                service=extra["service"],
                replica=extra["replica"],
                image=extra.get("image", "erp/demo-svc:1"),
                spec_hash=extra.get("spec_hash", "stale"),
                network=f"erp-{extra['tenant']}",
                volume="",
                port=8080,
                state=extra.get("state", "running"),
                networks=(f"erp-{extra['tenant']}",),
                labels=tuple(
                    sorted(
                        extra.get(
                            "labels",
                            {
                                "tenant-reconciler.managed": "true",
                                "tenant-reconciler.owner": "golden",
                            },
                        ).items()
                    )
                ),
            )
        )
    volumes = [t.volume for t in applied.values() if t.volume is not None]
    return Snapshot(
        containers=tuple(containers),
        networks=tuple(networks),
        volumes=tuple(volumes),
        used_subnets=tuple(n.subnet for n in networks if n.subnet),
    )


def plan_text(case: dict[str, Any]) -> str:
    desired, invalid = _render(case["catalog"], case.get("desired", []))
    snapshot = _observed(case)
    plan = diff(desired, snapshot, scope=case.get("scope"), protected=invalid)
    plan = ownership(plan, "golden")
    vanished = snapshot.tenants() - set(desired) - invalid
    allow = bool(case.get("allow_mass_delete", False))
    plan = mass_delete_guard(plan, len(snapshot.containers), MassDeleteLimits(), vanished=vanished, allow=allow)
    return render_text(plan).strip() + "\n"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_plan(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    actual = plan_text(case)
    if os.environ.get("UPDATE_GOLDEN"):
        case["expected"] = actual
        path.write_text(yaml.dump(case, Dumper=_LiteralDumper, sort_keys=False, width=120))
    assert actual == case["expected"], f"{path.name}: {case.get('description', '')}"


def test_every_case_is_described() -> None:
    assert len(CASES) >= 10
    for path in CASES:
        assert yaml.safe_load(path.read_text()).get("description"), path.name

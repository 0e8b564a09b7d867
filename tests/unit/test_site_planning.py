"""``plan_sites`` (pure): desired sites vs observed site files → changes of kind ``site``, ownership, the
mass-delete guard, invalid rows; and planning after applying is empty."""

from __future__ import annotations

from typing import Any

from desired_state.site_load import sites_from_rows
from reconciler.core.plan import Action
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.render_plan import render_text
from reconciler.core.sites import SiteFile
from reconciler.planning.sites import plan_sites
from renderers.nginx import NginxLayout

LAYOUT = NginxLayout(prefix="erp", owner="prod")
LIMITS = MassDeleteLimits()


def _rows(*names: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": n,
            "kind": "redirect",
            "host": f"{n}.example.test",
            "options": {"target": "https://x.example.test"},
            **extra,
        }
        for i, n in enumerate(names, 1)
    ]


def _applied(rows: list[dict[str, Any]]) -> dict[str, SiteFile]:
    planned = plan_sites(sites_from_rows(rows), {}, LAYOUT, LIMITS)
    return {c.tenant.removeprefix("site:"): c.after for c in planned.plan.changes if isinstance(c.after, SiteFile)}


def test_new_sites_are_created_and_planning_after_applying_is_empty() -> None:
    rows = _rows("a1", "b2")
    plan = plan_sites(sites_from_rows(rows), {}, LAYOUT, LIMITS).plan
    assert [(c.action, c.kind, c.tenant, c.name) for c in plan.changes] == [
        (Action.CREATE, "site", "site:a1", "erp-site-a1.conf"),
        (Action.CREATE, "site", "site:b2", "erp-site-b2.conf"),
    ]
    assert plan_sites(sites_from_rows(rows), _applied(rows), LAYOUT, LIMITS).plan.empty
    assert "site a1:\n    + site erp-site-a1.conf  [erp-site-a1.conf]\n        # site file missing" in render_text(plan)


def test_spec_changes_hand_edits_and_removals() -> None:
    observed = _applied(_rows("a1", "b2", "c3", "d4"))
    edited = observed["b2"]
    observed["b2"] = SiteFile.from_text("b2", edited.file, edited.text.replace("301", "302"))
    rows = _rows("a1", "b2", "c3")
    rows[0]["options"] = {"target": "https://y.example.test"}
    plan = plan_sites(sites_from_rows(rows), observed, LAYOUT, LIMITS).plan
    assert [(c.action.value, c.tenant, c.reason) for c in plan.changes] == [
        ("~", "site:a1", "site spec changed"),
        ("~", "site:b2", "site file edited by hand"),
        ("-", "site:d4", "site no longer in the database"),
    ]


def test_an_invalid_site_is_blocked_and_its_file_left_serving() -> None:
    observed = _applied(_rows("a1", "b2"))
    rows = _rows("a1", "b2")
    rows[1]["host"] = "not a host"
    plan = plan_sites(sites_from_rows(rows), observed, LAYOUT, LIMITS).plan
    assert plan.empty
    assert [(b.tenant, b.kind, b.reason) for b in plan.blocked] == [("site:b2", "site", "Invalid")]
    assert "site 'b2': host = 'not a host'" in plan.blocked[0].message


def test_files_of_another_owner_are_refused() -> None:
    theirs = SiteFile.from_text(
        "zz", "erp-site-zz.conf", "# tenant-reconciler owner=other site=zz digest=000000000000\n"
    )
    plan = plan_sites(sites_from_rows(_rows("a1")), {**_applied(_rows("a1")), "zz": theirs}, LAYOUT, LIMITS).plan
    assert plan.empty and [(r.policy, r.change.tenant) for r in plan.refused] == [("ownership", "site:zz")]


def test_removing_most_site_files_is_refused_whole_unless_allowed() -> None:
    observed = _applied(_rows("a1", "b2", "c3", "d4", "e5"))
    refused = plan_sites(sites_from_rows(_rows("a1")), observed, LAYOUT, LIMITS).plan
    assert refused.empty and len(refused.refused) == 4
    assert refused.errors[0].startswith("mass delete refused: the desired state would remove 4 of 5 site files")
    allowed = plan_sites(sites_from_rows(_rows("a1")), observed, LAYOUT, LIMITS, allow_mass_delete=True).plan
    assert [c.action for c in allowed.changes] == [Action.DELETE] * 4
    # Two of five is within the guard's limits; removals of the guard's window count too.
    keep = sites_from_rows(_rows("a1", "b2", "c3"))
    assert len(plan_sites(keep, observed, LAYOUT, LIMITS).plan.changes) == 2
    assert plan_sites(keep, observed, LAYOUT, LIMITS, recently={"site files": 3}).plan.empty

"""The pure DNS diff: desired rrsets vs observed zones → REPLACE/DELETE changes, conflicts and policies."""

from __future__ import annotations

import pytest

from reconciler.core.dns import (
    DnsPlan,
    OwnerMark,
    RRset,
    RRsetChange,
    apply_policy,
    canonical_content,
    diff_records,
    normalise_name,
    ownership,
    upsert_only,
)

OWNER = "test"
ZONE = "erp.test."


def ours(tenant: str, name: str, type_: str = "A", records: tuple[str, ...] = ("127.0.0.1",), ttl: int = 60) -> RRset:
    return RRset.of(name, type_, ttl, records, OwnerMark(OWNER, tenant))


def foreign(name: str, type_: str = "A", records: tuple[str, ...] = ("10.9.9.9",), ttl: int = 300) -> RRset:
    return RRset.of(name, type_, ttl, records)


SOA = foreign("erp.test.", "SOA", ("ns.erp.test. hostmaster.erp.test. 1 10800 3600 604800 3600",), 3600)


def summary(changes: tuple[RRsetChange, ...]) -> list[tuple[str, str, str, str]]:
    return [(c.changetype, c.tenant, c.rrset.name, c.rrset.type) for c in changes]


# ----------------------------------------------------------------------------- normalisation


def test_names_are_lowercased_and_get_a_trailing_dot() -> None:
    assert normalise_name("Acme.ERP.test") == "acme.erp.test."
    assert normalise_name(" acme.erp.test. ") == "acme.erp.test."


@pytest.mark.parametrize(
    ("type_", "content", "canonical"),
    [
        ("A", " 127.0.0.1 ", "127.0.0.1"),
        ("AAAA", "2001:DB8:0:0::1", "2001:db8::1"),
        ("CNAME", "Ingress.Example", "ingress.example."),
        ("TXT", '"hello  world"', '"hello  world"'),
        ("MX", "10   Mail.example.", "10 Mail.example."),
    ],
)
def test_record_content_has_one_canonical_form(type_: str, content: str, canonical: str) -> None:
    assert canonical_content(type_, content) == canonical


def test_rrset_of_normalises_and_sorts_records() -> None:
    rrset = RRset.of("B.erp.test", "a", 60, ["127.0.0.2", "127.0.0.1", "127.0.0.1"])
    assert rrset == RRset("b.erp.test.", "A", 60, ("127.0.0.1", "127.0.0.2"), None)


def test_owner_mark_round_trips_through_its_comment() -> None:
    mark = OwnerMark("test", "acme")
    assert mark.comment() == "tenant-reconciler owner=test tenant=acme"
    assert OwnerMark.parse(mark.comment()) == mark
    assert OwnerMark.parse("made by hand") is None
    assert OwnerMark.parse("tenant-reconciler owner=test") is None


# ----------------------------------------------------------------------------- basic publish / idle / drift


def test_missing_record_is_replaced_in() -> None:
    plan = diff_records({ZONE: [ours("acme", "acme.erp.test")]}, {ZONE: [SOA]}, owner=OWNER, tenants=None)
    assert summary(plan.changes) == [("REPLACE", "acme", "acme.erp.test.", "A")]
    assert plan.changes[0].before is None
    assert plan.changes[0].symbol == "+"
    assert plan.changes[0].zone == ZONE
    assert "missing" in plan.changes[0].reason


def test_idle_diff_is_empty_even_with_different_spelling() -> None:
    desired = ours("acme", "acme.erp.test")
    observed = RRset.of("ACME.erp.test.", "a", 60, ["127.0.0.1"], OwnerMark(OWNER, "acme"))
    plan = diff_records({ZONE: [desired]}, {ZONE: [SOA, observed]}, owner=OWNER, tenants=None)
    assert plan.empty
    assert not plan.conflicts


def test_record_edited_by_hand_is_restored() -> None:
    observed = ours("acme", "acme.erp.test", records=("10.0.0.7",), ttl=3600)
    plan = diff_records({ZONE: [ours("acme", "acme.erp.test")]}, {ZONE: [observed]}, owner=OWNER, tenants=None)
    assert summary(plan.changes) == [("REPLACE", "acme", "acme.erp.test.", "A")]
    change = plan.changes[0]
    assert change.symbol == "~"
    assert "10.0.0.7 -> 127.0.0.1" in change.reason
    assert "ttl 3600 -> 60" in change.reason


def test_several_tenants_several_zones() -> None:
    other = "other.test."
    plan = diff_records(
        {ZONE: [ours("acme", "acme.erp.test")], other: [ours("beta", "beta.other.test")]},
        {ZONE: [], other: []},
        owner=OWNER,
        tenants=None,
    )
    assert [(c.zone, c.tenant) for c in plan.changes] == [(ZONE, "acme"), (other, "beta")]
    assert plan.zones() == [ZONE, other]
    assert len(plan.for_zone(other)) == 1


def test_desired_for_an_unobserved_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"other\.test"):
        diff_records({"other.test.": [ours("acme", "acme.other.test")]}, {ZONE: []}, owner=OWNER, tenants=None)


def test_desired_rrsets_must_carry_our_mark() -> None:
    with pytest.raises(ValueError, match="owner mark"):
        diff_records({ZONE: [foreign("acme.erp.test")]}, {ZONE: []}, owner=OWNER, tenants=None)


# ----------------------------------------------------------------------------- removal


def test_full_pass_deletes_our_records_of_unpublished_tenants() -> None:
    plan = diff_records({ZONE: []}, {ZONE: [SOA, ours("gone", "gone.erp.test")]}, owner=OWNER, tenants=None)
    assert summary(plan.changes) == [("DELETE", "gone", "gone.erp.test.", "A")]
    assert plan.changes[0].symbol == "-"
    assert plan.changes[0].after is None
    assert "not published" in plan.changes[0].reason


def test_scoped_pass_leaves_tenants_outside_the_scope_alone() -> None:
    observed = {ZONE: [ours("gone", "gone.erp.test"), ours("acme", "acme.erp.test")]}
    plan = diff_records({ZONE: []}, observed, owner=OWNER, tenants=frozenset({"acme"}))
    assert summary(plan.changes) == [("DELETE", "acme", "acme.erp.test.", "A")]


def test_kept_tenants_keep_their_records_even_in_a_full_pass() -> None:
    plan = diff_records(
        {ZONE: []}, {ZONE: [ours("broken", "broken.erp.test")]}, owner=OWNER, tenants=None, keep=frozenset({"broken"})
    )
    assert plan.empty


def test_domain_change_deletes_the_old_name_and_adds_the_new_one() -> None:
    plan = diff_records(
        {ZONE: [ours("acme", "new.erp.test")]}, {ZONE: [ours("acme", "old.erp.test")]}, owner=OWNER, tenants=None
    )
    assert summary(plan.changes) == [
        ("DELETE", "acme", "old.erp.test.", "A"),
        ("REPLACE", "acme", "new.erp.test.", "A"),
    ]
    assert "no longer" in plan.changes[0].reason


def test_domain_moving_to_another_zone_deletes_in_the_old_zone() -> None:
    other = "other.test."
    plan = diff_records(
        {other: [ours("acme", "acme.other.test")]},
        {ZONE: [ours("acme", "acme.erp.test")], other: []},
        owner=OWNER,
        tenants=frozenset({"acme"}),
    )
    assert [(c.changetype, c.zone) for c in plan.changes] == [("DELETE", ZONE), ("REPLACE", other)]


def test_type_change_from_a_to_cname_deletes_first() -> None:
    plan = diff_records(
        {ZONE: [ours("acme", "acme.erp.test", "CNAME", ("ingress.example",))]},
        {ZONE: [ours("acme", "acme.erp.test")]},
        owner=OWNER,
        tenants=None,
    )
    # PowerDNS checks CNAME exclusivity rrset by rrset, so the DELETE must come first in the PATCH.
    assert summary(plan.changes) == [
        ("DELETE", "acme", "acme.erp.test.", "A"),
        ("REPLACE", "acme", "acme.erp.test.", "CNAME"),
    ]


def test_records_of_another_reconciler_are_never_deleted() -> None:
    theirs = RRset.of("x.erp.test", "A", 60, ["127.0.0.1"], OwnerMark("someone-else", "x"))
    plan = diff_records({ZONE: []}, {ZONE: [theirs, foreign("www.erp.test")]}, owner=OWNER, tenants=None)
    assert plan.empty


# ----------------------------------------------------------------------------- conflicts


def test_foreign_record_of_the_same_type_is_a_conflict_and_untouched() -> None:
    blocker = foreign("acme.erp.test", "A", ("10.9.9.9",))
    plan = diff_records({ZONE: [ours("acme", "acme.erp.test")]}, {ZONE: [blocker]}, owner=OWNER, tenants=None)
    assert plan.empty
    [conflict] = plan.conflicts
    assert conflict.tenant == "acme"
    assert conflict.blocker == blocker
    assert "acme.erp.test. A 10.9.9.9" in conflict.message
    assert "no owner mark" in conflict.message


@pytest.mark.parametrize(
    ("wanted_type", "wanted", "blocker"),
    [
        ("A", ("127.0.0.1",), foreign("acme.erp.test", "CNAME", ("elsewhere.example.",))),
        ("CNAME", ("ingress.example.",), foreign("acme.erp.test", "TXT", ('"hello"',))),
        ("CNAME", ("ingress.example.",), foreign("acme.erp.test", "A", ("10.9.9.9",))),
    ],
)
def test_cname_conflicts_with_any_other_type(wanted_type: str, wanted: tuple[str, ...], blocker: RRset) -> None:
    plan = diff_records(
        {ZONE: [ours("acme", "acme.erp.test", wanted_type, wanted)]}, {ZONE: [blocker]}, owner=OWNER, tenants=None
    )
    assert plan.empty
    assert [c.tenant for c in plan.conflicts] == ["acme"]


def test_foreign_record_of_another_type_does_not_conflict_with_an_a_record() -> None:
    txt = foreign("acme.erp.test", "TXT", ('"v=spf1 -all"',))
    plan = diff_records({ZONE: [ours("acme", "acme.erp.test")]}, {ZONE: [txt]}, owner=OWNER, tenants=None)
    assert summary(plan.changes) == [("REPLACE", "acme", "acme.erp.test.", "A")]
    assert not plan.conflicts


def test_conflicted_tenant_gets_no_change_at_all() -> None:
    # The tenant moved to a name someone else holds: its old record stays until the conflict is resolved.
    plan = diff_records(
        {ZONE: [ours("acme", "new.erp.test")]},
        {ZONE: [ours("acme", "old.erp.test"), foreign("new.erp.test")]},
        owner=OWNER,
        tenants=None,
    )
    assert plan.empty
    assert [c.tenant for c in plan.conflicts] == ["acme"]


def test_one_tenants_conflict_does_not_block_another() -> None:
    plan = diff_records(
        {ZONE: [ours("acme", "acme.erp.test"), ours("beta", "beta.erp.test")]},
        {ZONE: [foreign("acme.erp.test")]},
        owner=OWNER,
        tenants=None,
    )
    assert summary(plan.changes) == [("REPLACE", "beta", "beta.erp.test.", "A")]
    assert [c.tenant for c in plan.conflicts] == ["acme"]


def test_unmarked_copy_of_our_record_is_foreign() -> None:
    # Somebody removed our comment: the rrset no longer carries the mark, so it is not ours any more.
    plan = diff_records(
        {ZONE: [ours("acme", "acme.erp.test")]},
        {ZONE: [foreign("acme.erp.test", records=("127.0.0.1",))]},
        owner=OWNER,
        tenants=None,
    )
    assert plan.empty
    assert plan.conflicts


def test_two_tenants_wanting_one_name_the_current_holder_wins() -> None:
    plan = diff_records(
        {ZONE: [ours("aaa", "shop.erp.test"), ours("zzz", "shop.erp.test")]},
        {ZONE: [ours("zzz", "shop.erp.test")]},
        owner=OWNER,
        tenants=None,
    )
    assert plan.empty
    [conflict] = plan.conflicts
    assert conflict.tenant == "aaa"
    assert "zzz" in conflict.message


def test_two_new_tenants_wanting_one_name_the_first_by_name_wins() -> None:
    plan = diff_records(
        {ZONE: [ours("zzz", "shop.erp.test"), ours("aaa", "shop.erp.test")]}, {ZONE: []}, owner=OWNER, tenants=None
    )
    assert summary(plan.changes) == [("REPLACE", "aaa", "shop.erp.test.", "A")]
    assert [c.tenant for c in plan.conflicts] == ["zzz"]


def test_name_released_by_another_tenant_is_taken_over() -> None:
    plan = diff_records(
        {ZONE: [ours("new", "shop.erp.test")]}, {ZONE: [ours("old", "shop.erp.test")]}, owner=OWNER, tenants=None
    )
    assert summary(plan.changes) == [("REPLACE", "new", "shop.erp.test.", "A")]
    assert "taken over from tenant old" in plan.changes[0].reason


def test_name_held_by_a_kept_tenant_is_a_conflict() -> None:
    plan = diff_records(
        {ZONE: [ours("new", "shop.erp.test")]},
        {ZONE: [ours("old", "shop.erp.test")]},
        owner=OWNER,
        tenants=None,
        keep=frozenset({"old"}),
    )
    assert plan.empty
    assert "tenant old" in plan.conflicts[0].message


def test_name_held_by_a_tenant_outside_the_scope_is_a_conflict() -> None:
    plan = diff_records(
        {ZONE: [ours("new", "shop.erp.test")]},
        {ZONE: [ours("old", "shop.erp.test")]},
        owner=OWNER,
        tenants=frozenset({"new"}),
    )
    assert plan.empty
    assert [c.tenant for c in plan.conflicts] == ["new"]


# ----------------------------------------------------------------------------- policies


def test_upsert_only_never_deletes() -> None:
    plan = diff_records(
        {ZONE: [ours("acme", "new.erp.test")]},
        {ZONE: [ours("acme", "old.erp.test"), ours("gone", "gone.erp.test")]},
        owner=OWNER,
        tenants=None,
    )
    filtered = upsert_only(plan)
    assert summary(filtered.changes) == [("REPLACE", "acme", "new.erp.test.", "A")]
    assert sorted(r.change.tenant for r in filtered.refused) == ["acme", "gone"]
    assert all(r.policy == "upsert-only" for r in filtered.refused)


def test_upsert_only_withholds_a_cname_that_needs_a_delete_first() -> None:
    plan = diff_records(
        {ZONE: [ours("acme", "acme.erp.test", "CNAME", ("ingress.example.",))]},
        {ZONE: [ours("acme", "acme.erp.test")]},
        owner=OWNER,
        tenants=None,
    )
    filtered = upsert_only(plan)
    assert filtered.empty
    assert len(filtered.refused) == 2
    assert "CNAME" in filtered.refused[1].reason or "CNAME" in filtered.refused[0].reason


def test_ownership_policy_refuses_changes_to_unmarked_rrsets() -> None:
    change = RRsetChange("DELETE", ZONE, "acme", "forged", before=foreign("acme.erp.test"), after=None)
    plan = ownership(DnsPlan(changes=(change,)), OWNER)
    assert plan.empty
    assert plan.refused[0].policy == "ownership"


def test_apply_policy_sync_keeps_deletes() -> None:
    plan = diff_records({ZONE: []}, {ZONE: [ours("gone", "gone.erp.test")]}, owner=OWNER, tenants=None)
    assert len(apply_policy(plan, "sync", OWNER).changes) == 1
    assert apply_policy(plan, "upsert-only", OWNER).empty


def test_diff_after_applying_is_empty() -> None:
    desired = {ZONE: [ours("acme", "new.erp.test"), ours("beta", "beta.erp.test", "AAAA", ("2001:db8::1",))]}
    observed = [SOA, ours("acme", "old.erp.test"), ours("gone", "gone.erp.test"), foreign("www.erp.test")]
    plan = diff_records(desired, {ZONE: observed}, owner=OWNER, tenants=None)
    after = {r.key: r for r in observed}
    for change in plan.changes:
        if change.after is None:
            del after[change.rrset.key]
        else:
            after[change.after.key] = change.after
    assert diff_records(desired, {ZONE: list(after.values())}, owner=OWNER, tenants=None).empty


def test_records_of_a_conflicted_tenant_block_others_in_turn() -> None:
    # old moved to a name someone else holds, so its record at shop stays; new cannot take shop over.
    plan = diff_records(
        {ZONE: [ours("old", "taken.erp.test"), ours("new", "shop.erp.test", "CNAME", ("ingress.example.",))]},
        {ZONE: [ours("old", "shop.erp.test"), foreign("taken.erp.test")]},
        owner=OWNER,
        tenants=None,
    )
    assert plan.empty
    assert [c.tenant for c in plan.conflicts] == ["new", "old"]
    assert "held by tenant old" in plan.conflicts[0].message

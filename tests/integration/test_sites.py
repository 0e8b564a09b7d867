"""Nginx sites against a real Nginx (Debian's), started and owned by the driver: forward with cache, redirect,
allow/deny, static; graceful reloads under load; invalid rows and configurations rejected by ``nginx -t`` leave
the other sites serving; heal, ownership and the mass-delete guard (issue 16)."""

from __future__ import annotations

import threading
from collections import Counter

from desired_state.site_status import read_site_statuses
from tests.integration.sites_support import SitesRig, Upstream


def _statuses(sites: SitesRig) -> dict[str, object]:
    return {s.site: s for s in read_site_statuses(sites.engine)}


def test_forward_with_cache_answers_the_second_request_from_the_cache(sites: SitesRig) -> None:
    upstream = Upstream.start()
    try:
        sites.add("shop", "forward", "shop.example.test", {"upstream": upstream.url, "cache": {"ttl": 300}})
        outcome = sites.step.run()
        assert [c.action.value for c in outcome.applied] == ["+"] and not outcome.errors

        first = sites.get("shop.example.test", "/page")
        second = sites.get("shop.example.test", "/page")
        assert first.status == second.status == 200
        assert first.headers["x-cache-status"] == "MISS"
        assert second.headers["x-cache-status"] == "HIT"
        assert second.body == b"upstream /page host=shop.example.test\n"  # Host preserved by default
        assert upstream.hits == {"/page": 1}

        # A WordPress login cookie bypasses the cache: the upstream sees that request.
        logged_in = sites.get("shop.example.test", "/page", cookie="wordpress_logged_in_abc=1")
        assert logged_in.headers["x-cache-status"] == "BYPASS"
        assert upstream.hits == {"/page": 2}
    finally:
        upstream.stop()


def test_forward_rewrites_the_host_header_when_asked(sites: SitesRig) -> None:
    upstream = Upstream.start()
    try:
        sites.add("api", "forward", "api.example.test", {"upstream": upstream.url, "host_header": "backend.internal"})
        sites.step.run()
        assert sites.get("api.example.test", "/x").body == b"upstream /x host=backend.internal\n"
    finally:
        upstream.stop()


def test_paths_map_onto_the_upstream_path_and_the_volume(sites: SitesRig) -> None:
    upstream = Upstream.start()
    volume = sites.static_root / "manuals"
    volume.mkdir(mode=0o755)
    (volume / "a.txt").write_text("a\n")
    try:
        sites.add("app", "forward", "app.example.test", {"upstream": f"{upstream.url}/base"}, path="/app")
        sites.add("manual", "static", "manual.example.test", {"volume": "manuals"}, path="/docs")
        sites.step.run()
        assert sites.get("app.example.test", "/app/x?y=1").body.startswith(b"upstream /base/x?y=1 ")
        assert sites.get("app.example.test", "/app").headers["location"].endswith("/app/")
        assert sites.get("app.example.test", "/elsewhere").status == 404
        assert sites.get("manual.example.test", "/docs/a.txt").body == b"a\n"
        assert sites.get("manual.example.test", "/a.txt").status == 404
        assert upstream.hits == {"/base/x?y=1": 1}
    finally:
        upstream.stop()


def test_redirect_answers_with_its_code_and_location(sites: SitesRig) -> None:
    sites.add("old", "redirect", "old.example.test", {"target": "https://new.example.test/", "code": 308})
    sites.add("keep", "redirect", "keep.example.test", {"target": "https://new.example.test", "keep_path": True})
    sites.step.run()
    reply = sites.get("old.example.test", "/anything")
    assert (reply.status, reply.headers["location"]) == (308, "https://new.example.test/")
    kept = sites.get("keep.example.test", "/a/b?c=1")
    assert (kept.status, kept.headers["location"]) == (301, "https://new.example.test/a/b?c=1")
    assert sites.get("unknown.example.test").status == 404  # a host no site claims


def test_deny_list_returns_403_to_a_denied_address(sites: SitesRig) -> None:
    target = {"target": "https://new.example.test/"}
    sites.add("guarded", "redirect", "guarded.example.test", target, deny=["127.0.0.2"])
    sites.add("private", "redirect", "private.example.test", target, allow=["127.0.0.2/32"])
    sites.step.run()
    assert sites.get("guarded.example.test", source="127.0.0.2").status == 403
    assert sites.get("guarded.example.test", source="127.0.0.1").status == 301
    # An allow list lets only its ranges in.
    assert sites.get("private.example.test", source="127.0.0.2").status == 301
    assert sites.get("private.example.test", source="127.0.0.1").status == 403


def test_static_site_serves_a_file_from_its_volume_with_cache_headers(sites: SitesRig) -> None:
    volume = sites.static_root / "docs-files"
    volume.mkdir(mode=0o755)
    (volume / "index.html").write_text("<h1>docs</h1>\n")
    (volume / "index.html").chmod(0o644)
    sites.add("docs", "static", "docs.example.test", {"volume": "docs-files", "max_age": 600})
    sites.step.run()
    reply = sites.get("docs.example.test", "/index.html")
    assert reply.status == 200 and reply.body == b"<h1>docs</h1>\n"
    assert reply.headers["cache-control"] == "max-age=600"
    assert "expires" in reply.headers
    assert sites.get("docs.example.test", "/missing.html").status == 404


def test_reloads_under_a_request_loop_lose_no_request(sites: SitesRig) -> None:
    sites.add("busy", "redirect", "busy.example.test", {"target": "https://a.example.test/"})
    sites.step.run()
    stop = threading.Event()
    results: Counter[str] = Counter()

    def loop() -> None:
        while not stop.is_set():
            try:
                results[str(sites.get("busy.example.test").status)] += 1
            except OSError as exc:
                results[type(exc).__name__] += 1

    clients = [threading.Thread(target=loop) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        for i in range(8):
            sites.change("busy", options={"target": f"https://a{i}.example.test/"})
            assert [c.action.value for c in sites.step.run().applied] == ["~"]
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert sites.driver.calls["reload"] >= 9
    print("requests during reloads:", dict(results))
    assert set(results) == {"301"} and results["301"] > 0, results
    assert sites.get("busy.example.test").headers["location"] == "https://a7.example.test/"


def test_invalid_row_and_rejected_configuration_leave_every_other_site_serving(sites: SitesRig) -> None:
    target = {"target": "https://ok.example.test/"}
    sites.add("good", "redirect", "good.example.test", target)
    sites.add("later", "redirect", "later.example.test", target)
    sites.step.run()
    # A row validation rejects; a forward whose upstream host does not resolve (nginx -t refuses it); and an
    # update of a serving site to such an upstream.
    sites.add("broken", "redirect", "bad host!", target)
    sites.add("unresolved", "forward", "unresolved.example.test", {"upstream": "http://no-such-host.invalid:8080"})
    sites.change("later", kind="forward", options={"upstream": "http://no-such-host.invalid:8080"})
    sites.add("fresh", "redirect", "fresh.example.test", target)
    outcome = sites.step.run()

    assert sorted(c.name.split("-site-")[1] for c in outcome.applied) == ["fresh.conf"]
    assert set(outcome.errors) == {"unresolved", "later"}
    assert "no-such-host.invalid" in outcome.errors["unresolved"]
    for host in ("good.example.test", "fresh.example.test", "later.example.test"):  # later: its previous file
        assert sites.get(host).status == 301, host
    assert sites.get("unresolved.example.test").status == 404

    statuses = _statuses(sites)
    broken = statuses["broken"]
    assert broken.phase == "Failed" and broken.condition("Valid").status == "False"
    assert "site 'broken': host = 'bad host!'" in broken.last_error
    for name in ("unresolved", "later"):
        loaded = statuses[name].condition("ConfigLoaded")
        assert statuses[name].phase == "Failed" and (loaded.status, loaded.reason) == ("False", "NginxRejected")
    assert statuses["good"].phase == statuses["fresh"].phase == "Ready"
    assert sites.metric("reconciler_site_rejections_total") == 2
    assert (
        sites.metric("reconciler_sites", phase="Failed") == 3 and sites.metric("reconciler_sites", phase="Ready") == 2
    )
    assert sites.metric("reconciler_actions_total", kind="site", action="create") == 3
    assert sites.step.compute().planned.plan.blocked[0].reason == "Invalid"

    # Fixed: the rejected site is loaded on the next pass.
    sites.change("unresolved", options={"upstream": "http://127.0.0.1:9"})
    assert not sites.step.run().errors.get("unresolved")
    assert sites.get("unresolved.example.test").status == 502  # served (nothing listens upstream)


def test_deleted_or_edited_file_is_healed_and_a_converged_pass_writes_nothing(sites: SitesRig) -> None:
    sites.add("heal", "redirect", "heal.example.test", {"target": "https://ok.example.test/"})
    sites.step.run()
    path = sites.driver.sites_dir / f"{sites.layout.prefix}-site-heal.conf"
    text = path.read_text()
    writes = sites.driver.calls["write"]
    assert sites.step.run().applied == [] and sites.driver.calls["write"] == writes

    path.unlink()
    healed = sites.step.run().applied
    assert [(c.action.value, c.reason) for c in healed] == [("+", "site file missing")]
    assert path.read_text() == text

    path.write_text(text.replace("301", "302"))
    assert [c.reason for c in sites.step.run().applied] == ["site file edited by hand"]
    assert path.read_text() == text


def test_foreign_files_are_never_touched_and_mass_delete_is_refused(sites: SitesRig) -> None:
    foreign = sites.driver.sites_dir / f"{sites.layout.prefix}-site-theirs.conf"
    for name in ("a1", "a2", "a3", "a4"):
        sites.add(name, "redirect", f"{name}.example.test", {"target": "https://ok.example.test/"})
    sites.step.run()
    foreign.write_text(
        "# tenant-reconciler owner=someone-else site=theirs digest=000000000000; x\n"
        f"server {{ listen {sites.layout.listen}; server_name theirs.example.test; return 204; }}\n"
    )
    outcome = sites.step.run()
    assert outcome.applied == [] and [r.policy for r in outcome.planned.plan.refused] == ["ownership"]
    assert foreign.exists()

    for name in ("a1", "a2", "a3", "a4"):
        sites.remove(name)
    refused = sites.step.run()
    assert refused.applied == [] and "mass delete refused" in refused.planned.plan.errors[0]
    assert sites.get("a1.example.test").status == 301
    assert _statuses(sites)["a1"].condition("ConfigLoaded").reason == "MassDeleteRefused"

    allowed = sites.step.run(allow_mass_delete=True)
    assert sorted(c.action.value for c in allowed.applied) == ["-"] * 4
    assert sites.get("a1.example.test").status == 404
    assert _statuses(sites)["a1"].phase == "Removed"
    assert foreign.exists()

"""Issue 16 acceptance: Nginx sites get DNS records through PowerDNS, in the same pass and plan as the tenants.

The real reconciler (containers, the DNS stage on this test's zone, our own Nginx on a free 127.0.0.1 port): a site
row is answered by PowerDNS's DNS port with the configured public address once Nginx has loaded its file; the site
removed, its record goes; the tenant's record of the same zone stays as it was.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from deploy.devstack import free_port
from desired_state.site_status import read_site_statuses
from desired_state.site_tables import Site
from reconciler.runtime.passes.sites_step import SitesStep
from tests.integration.fleet import dns_answer as answer
from tests.integration.fleet import pdns_api
from tests.integration.harness import Harness
from tests.integration.sites_support import get

pytestmark = pytest.mark.integration

NGINX_ADDRESS = "127.0.0.2"  # the operator's public address for Nginx, distinct from the tenants' 127.0.0.1


def _yaml(zone: str, with_site: bool = True) -> str:
    domain = zone.rstrip(".")
    text = (
        'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 32M, cpus: 0.1}\n'
        f"tenants:\n  - name: acme\n    domain: acme.{domain}\n    services:\n      a: {{}}\n"
    )
    if with_site:
        text += (
            f"sites:\n  - name: shop\n    kind: redirect\n    host: shop.{domain}\n"
            '    redirect: {target: "https://www.example.com/", code: 308}\n'
        )
    return text


@pytest.fixture
def site_dns(owner_id: str, docker_client: Any, demo_images: Any, postgres_url: str, powerdns: Any) -> Iterator[Any]:
    root = Path(tempfile.mkdtemp(prefix="site-dns-"))
    root.chmod(0o755)
    port = free_port()
    h = Harness.create(
        owner_id,
        postgres_url,
        docker_client,
        powerdns_url=powerdns.api_url,
        powerdns_api_key=powerdns.api_key,
        powerdns_zones=json.dumps([f"{owner_id}.test."]),
        nginx_state_dir=str(root / "nginx"),
        nginx_listen=f"127.0.0.1:{port}",
        nginx_static_root=str(root),
        nginx_public_address=NGINX_ADDRESS,
    )
    try:
        yield h, port
    finally:
        sites = h.rt.reconciler.sites
        if isinstance(sites, SitesStep):
            sites.driver.stop()
        if powerdns.running():
            with pdns_api(powerdns) as client:
                client.delete(f"/zones/{owner_id}.test.")
        h.rt.reconciler.dns.close()  # type: ignore[union-attr]
        h.rt.engine.dispose()
        shutil.rmtree(root, ignore_errors=True)


def _dns_ready(h: Harness) -> tuple[str, str, str]:
    [status] = [s for s in read_site_statuses(h.rt.engine) if s.site == "shop"]
    condition = status.condition("DNSReady")
    assert condition is not None, status
    return condition.status, condition.reason, status.phase


def test_site_record_follows_nginx_and_goes_with_the_site_leaving_the_tenant_alone(
    site_dns: Any, powerdns: Any, owner_id: str
) -> None:
    h, port = site_dns
    zone = f"{owner_id}.test."
    shop, acme = f"shop.{zone}", f"acme.{zone}"
    h.import_yaml(_yaml(zone))

    # First pass: the site's file is written and loaded after the DNS publications, so the record waits for it.
    assert h.apply().ok
    assert get(port, shop.rstrip(".")).status == 308
    assert answer(powerdns, shop) == ("NXDOMAIN", [])
    assert _dns_ready(h)[:2] == ("False", "Pending")

    # `reconciler plan` shows the site's record with the site, as the process that applies will see it.
    shown = h.cli("plan")
    assert shown.returncode == 2, shown.stderr
    assert f"site shop:\n    + dns {shop} A in {zone}  [{NGINX_ADDRESS} ttl=60]" in shown.stdout

    # Second pass: Nginx has the file; the record points at the configured public address, the tenant's at its own.
    result = h.apply()
    assert result.ok, result.errors
    assert [(c.action.value, c.tenant, c.name) for c in result.dns_applied if c.tenant == "site:shop"] == [
        ("+", "site:shop", f"{shop} A")
    ]
    assert answer(powerdns, shop) == ("NOERROR", [NGINX_ADDRESS])
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])
    assert _dns_ready(h) == ("True", "Published", "Ready")
    with pdns_api(powerdns) as client:
        rrsets = {(r["name"], r["type"]): r for r in client.get(f"/zones/{zone}").json()["rrsets"]}
    comments = [c["content"] for c in rrsets[(shop, "A")]["comments"]]
    assert comments == [f"tenant-reconciler owner={owner_id} tenant=site:shop"]
    tenant_comments = [c["content"] for c in rrsets[(acme, "A")]["comments"]]
    assert tenant_comments == [f"tenant-reconciler owner={owner_id} tenant=acme"]  # the tenants' format unchanged

    # Converged: one GET, no PATCH; and no tenant named after the site was ever made.
    dns_driver = h.rt.reconciler.dns.driver  # type: ignore[union-attr]
    dns_driver.requests.clear()
    idle = h.apply()
    assert idle.ok and not idle.plan.changes
    assert dns_driver.requests == {"GET": 1}
    from desired_state.status import read_statuses

    assert [s.tenant for s in read_statuses(h.rt.engine)] == ["acme"]

    # The site goes. Its file is the only one: the sites' mass-delete guard refuses, and the record stays with it.
    with h.rt.engine.begin() as connection:
        connection.execute(delete(Site).where(Site.name == "shop"))
    refused = h.apply()
    assert not [c for c in refused.dns_applied if c.tenant == "site:shop"]
    assert answer(powerdns, shop) == ("NOERROR", [NGINX_ADDRESS])
    assert get(port, shop.rstrip(".")).status == 308
    # Allowed: the record is deleted first (before the file), the tenant's record and containers stay.
    gone = h.apply(allow_mass_delete=True)
    assert gone.ok, gone.errors
    assert [(c.action.value, c.tenant) for c in gone.dns_applied] == [("-", "site:shop")]
    assert answer(powerdns, shop) == ("NXDOMAIN", [])
    assert answer(powerdns, acme) == ("NOERROR", ["127.0.0.1"])
    assert len(h.running("acme")) == 1
    assert get(port, shop.rstrip(".")).status == 404  # the file went too: Nginx's default server answers


def test_a_site_on_a_tenant_host_gets_a_conflict_naming_the_tenant(site_dns: Any, powerdns: Any, owner_id: str) -> None:
    h, _ = site_dns
    zone = f"{owner_id}.test."
    h.import_yaml(_yaml(zone).replace(f"host: shop.{zone.rstrip('.')}", f"host: acme.{zone.rstrip('.')}"))
    h.apply()
    h.apply()
    assert answer(powerdns, f"acme.{zone}") == ("NOERROR", ["127.0.0.1"])
    status, reason, phase = _dns_ready(h)
    assert (status, reason, phase) == ("False", "Conflict", "Failed")
    [row] = [s for s in read_site_statuses(h.rt.engine) if s.site == "shop"]
    assert row.last_error is not None and "route host of tenant 'acme', which claimed it first" in row.last_error


def test_a_leaving_site_keeps_its_file_while_powerdns_is_down(site_dns: Any, powerdns: Any, owner_id: str) -> None:
    h, port = site_dns
    zone = f"{owner_id}.test."
    shop = f"shop.{zone}"
    h.import_yaml(_yaml(zone))
    h.apply()
    h.apply()
    assert answer(powerdns, shop) == ("NOERROR", [NGINX_ADDRESS])
    with h.rt.engine.begin() as connection:
        connection.execute(delete(Site).where(Site.name == "shop"))

    powerdns.stop()
    try:
        h.apply(allow_mass_delete=True)
        # Its record may still be served: the file stays and the status says why.
        assert get(port, shop.rstrip(".")).status == 308
        [row] = [s for s in read_site_statuses(h.rt.engine) if s.site == "shop"]
        loaded = row.condition("ConfigLoaded")
        assert loaded is not None and loaded.reason == "WaitingForDns"
    finally:
        powerdns.start()

    assert h.apply(allow_mass_delete=True).ok
    assert answer(powerdns, shop) == ("NXDOMAIN", [])
    assert get(port, shop.rstrip(".")).status == 404


def test_the_sweep_of_reconciler_run_publishes_and_removes_site_records(
    site_dns: Any, powerdns: Any, owner_id: str
) -> None:
    h, port = site_dns
    zone = f"{owner_id}.test."
    shop = f"shop.{zone}"
    h.import_yaml(_yaml(zone))
    reconciler = h.rt.reconciler
    reconciler.sweep()  # writes the site's file (the tenant is left to its own passes)
    swept = reconciler.sweep()
    assert answer(powerdns, shop) == ("NOERROR", [NGINX_ADDRESS])
    assert swept.tenants == ["acme"]  # the site is never queued as a tenant
    assert get(port, shop.rstrip(".")).status == 308

    with h.rt.engine.begin() as connection:
        connection.execute(delete(Site).where(Site.name == "shop"))
    reconciler.sweep(allow_mass_delete=True)
    assert answer(powerdns, shop) == ("NXDOMAIN", [])
    assert get(port, shop.rstrip(".")).status == 404

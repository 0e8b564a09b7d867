"""Issue 14 acceptance, in a real browser: Debian's headless Chromium driven by Playwright against the console of
``reconciler serve`` beside a real ``reconciler run``, with PostgreSQL, Docker and Traefik.

An operator logs in, creates a tenant and watches it become Ready, changes its replicas after reading the previewed
plan, backs it up and sees the backup succeed, restores it, reads the history, sees the usage chart and log lines of
the tenant's containers; a viewer can change nothing. The screenshot of the tenant page is docs/console.png.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from desired_state.access import create_token
from tests.integration.api_support import served
from tests.integration.harness import Harness, routed_harness, wait_until

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"
CATALOG = (
    'catalog:\n  a: {image: "erp/demo-svc:1", port: 8080, health: /health, memory: 16M, cpus: 0.1, public: true}\n'
)
# docs/console.png and docs/console-fa.png are taken by this test with SCREENSHOT=docs/console.png and
# SCREENSHOT_FA=docs/console-fa.png set; otherwise they go to the test's tmp_path.
SCREENSHOT = os.environ.get("SCREENSHOT")
SCREENSHOT_FA = os.environ.get("SCREENSHOT_FA")


@dataclass
class Stack:
    harness: Harness
    base: str
    traefik: Any
    tmp_path: Path


@pytest.fixture
def stack(
    owner_id: str, postgres_url: str, docker_client: Any, demo_images: Any, traefik: Any, tmp_path: Path
) -> Iterator[Stack]:
    with routed_harness(
        owner_id,
        postgres_url,
        docker_client,
        traefik,
        backup_dir=str(tmp_path / "backups"),
        backup_min_free_mib="1",
        backup_min_interval="1",
        operation_poll_interval="1",
        usage_interval="2",
    ) as h:
        h.import_yaml(CATALOG)
        create_token(h.rt.engine, "olga", "operator", password=PASSWORD)
        create_token(h.rt.engine, "vera", "viewer", password=PASSWORD, locale="fa")
        h.start_run(log_path=tmp_path / "run.log")
        with served(h.settings()) as base:
            yield Stack(harness=h, base=base, traefik=traefik, tmp_path=tmp_path)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _login(browser: Browser, base: str, name: str) -> Page:
    page = browser.new_context(base_url=base, viewport={"width": 1200, "height": 900}).new_page()
    page.goto("/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    page.wait_for_url("**/tenants")
    return page


def _submit(page: Page, selector: str) -> None:
    """Click a form's submit button and wait for the page the POST leads to.

    A reload issued while the form's navigation is still under way fails with
    "Not attached to an active page", so every submit waits for its own page.
    """
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def _reload_until(page: Page, check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.reload()
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _ready(page: Page) -> bool:
    return page.get_attribute("#phase", "data-phase") == "Ready" and page.inner_text("#in-sync") == "yes"


def test_an_operator_runs_a_tenant_from_the_console_and_a_viewer_cannot_change_it(
    stack: Stack, browser: Browser
) -> None:
    h = stack.harness
    page = _login(browser, stack.base, "olga")

    # Create a tenant and watch it become Ready.
    page.fill("#new-tenant input[name=name]", "shop")
    page.fill("#new-tenant input[name=domain]", "shop.erp.test")
    page.fill("#new-tenant input[name=services]", "a")
    _submit(page, "#create")
    page.wait_for_url("**/tenants/shop")
    _reload_until(page, lambda: _ready(page), "shop Ready")
    assert len(h.running("shop")) == 1
    served_page = httpx.get(stack.traefik.web_url, headers={"Host": "shop.erp.test"}, timeout=10)
    assert served_page.status_code == 200

    # Change the replicas after reading the previewed plan.
    page.fill("input[name=replicas-a]", "2")
    _submit(page, "#preview-button")
    preview = page.inner_text("#preview")
    assert "+ container" in preview and "shop" in preview
    _submit(page, "#save-button")
    page.wait_for_selector("#notice")
    wait_until(lambda: len(h.running("shop")) == 2, timeout=60, what="two replicas of shop")
    _reload_until(page, lambda: _ready(page), "shop Ready at the new generation")

    # Back up now, see it succeed, restore it.
    _submit(page, "#backup-now")
    _reload_until(
        page,
        lambda: page.locator('#backups tr[data-backup][data-status="succeeded"]').count() == 1,
        "the backup to succeed",
    )
    # The request row is answered just after the backup row is finished: a reload may fall in between.
    _reload_until(
        page,
        lambda: page.locator('#requests tr[data-kind="backup"][data-status="succeeded"]').count() == 1,
        "the backup request to be answered",
    )
    _submit(page, "#backups button.restore")
    _reload_until(
        page,
        lambda: page.locator('#requests tr[data-kind="restore"][data-status="succeeded"]').count() == 1,
        "the restore to succeed",
        timeout=180,
    )
    _reload_until(page, lambda: _ready(page), "shop Ready after the restore")

    # The history, the usage chart and the log lines of the tenant's containers.
    history = page.inner_text("#history")
    assert "backup" in history and "restore" in history
    assert page.locator('#history tr[data-kind="restore"][data-status="succeeded"]').count() >= 1
    _reload_until(
        page,
        lambda: int(page.get_attribute('svg[data-metric="memory"]', "data-points") or 0) >= 2,
        "two usage samples in the chart",
    )
    assert page.locator('svg[data-metric="memory"] polyline').count() == 1
    logs = page.inner_text("#log-lines")
    assert "tenant=shop service=a" in logs
    page.screenshot(path=SCREENSHOT or str(stack.tmp_path / "console.png"), full_page=True)

    # A viewer (in Persian, right to left) reads everything and can change nothing.
    viewer = _login(browser, stack.base, "vera")
    viewer.goto("/tenants/shop")
    assert viewer.get_attribute("#phase", "data-phase") == "Ready"
    assert viewer.get_attribute("html", "dir") == "rtl" and viewer.inner_text("#phase") == "آماده"
    viewer.screenshot(path=SCREENSHOT_FA or str(stack.tmp_path / "console-fa.png"), full_page=True)
    assert viewer.locator("#save-button, #preview-button, #backup-now, button.restore, #create").count() == 0
    assert viewer.locator("input[name=replicas-a]").is_disabled()
    csrf = viewer.get_attribute("input[name=csrf]", "value") or ""
    refused = viewer.request.post("/tenants/shop/action", form={"csrf": csrf, "do": "stop"})
    assert refused.status == 403
    refused = viewer.request.post(
        "/tenants/shop/edit", form={"csrf": csrf, "do": "save", "replicas-a": "0", "generation": "2"}
    )
    assert refused.status == 403
    time.sleep(2)
    assert len(h.running("shop")) == 2

"""A one-shot command is a whole process: what it imports is part of its latency (docs/benchmarks.md, "CLI start").
Checked in a fresh interpreter, so an import added at module level anywhere on the way shows here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Imported by ``reconciler.cli`` itself: argument parsing needs none of these (``--version`` and ``--help`` stay
# at interpreter start-up cost); each command imports what it uses.
NOT_AT_CLI_IMPORT = (
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "alembic",
    "docker",
    "python_on_whales",
    "httpx",
    "prometheus_client",
    "pika",
    "telegram",
    "apscheduler",
    "yaml",
)
# Imported by the wiring of ``plan``, ``apply`` and ``run``: migrations, nudges and alerts only when used.
NOT_AT_WIRING = ("alembic", "mako", "pika", "telegram")


def loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    probe = f"import json, sys\n{statement}\nprint(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert loaded_after("import reconciler.cli", NOT_AT_CLI_IMPORT) == []


def test_version_needs_no_settings() -> None:
    statement = "import reconciler.cli\ntry:\n    reconciler.cli.main(['--version'])\nexcept SystemExit:\n    pass"
    assert loaded_after(statement, NOT_AT_CLI_IMPORT) == []


def test_wiring_leaves_migrations_nudges_and_alerts_out() -> None:
    assert loaded_after("import reconciler.runtime.wiring, desired_state.database", NOT_AT_WIRING) == []


# Not needed by a no-op ``plan`` / ``apply`` without routing: python-on-whales (pulls, helpers, events), httpx and
# what it brings (probes of new containers, the restore's maintenance answer, routing and DNS), APScheduler (jobs
# of ``run`` only).
NOT_FOR_A_ONE_SHOT_PASS = ("python_on_whales", "httpx", "click", "rich", "pygments", "apscheduler", *NOT_AT_WIRING)

_BUILD = (
    "from reconciler.runtime.settings import Settings\n"
    "from reconciler.runtime.wiring import build_runtime\n"
    "runtime = build_runtime(Settings(database_url='sqlite:///{db}', owner_id='imports'), schedule={schedule})\n"
    "print(runtime.scheduler.jobs())\n"
)


def test_the_runtime_of_plan_and_apply_leaves_cli_probe_and_scheduler_libraries_out(tmp_path: Path) -> None:
    # Built as ``reconciler plan`` builds it (no routing or DNS configured), without connecting to anything.
    statement = _BUILD.format(db=tmp_path / "none.sqlite3", schedule=False)
    assert loaded_after(statement, NOT_FOR_A_ONE_SHOT_PASS) == []
    assert not (tmp_path / "none.sqlite3").exists()


def test_the_runtime_of_run_still_registers_its_jobs(tmp_path: Path) -> None:
    statement = _BUILD.format(db=tmp_path / "none.sqlite3", schedule=True)
    assert loaded_after(statement, ("apscheduler",)) == ["apscheduler"]

"""A one-shot command is a whole process: what it imports is part of its latency (docs/benchmarks.md, "CLI start").
Checked in a fresh interpreter, so an import added at module level anywhere on the way shows here."""

from __future__ import annotations

import json
import subprocess
import sys

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

"""``reconciler render compose [TENANT...]``: every tenant's desired state as a Compose file (issue 13).

Called lazily by ``reconciler.cli``. Reads the desired state as a pass does (``desired_state.load``), renders each
tenant with the pass's own renderer and settings (naming, health check, container defaults), then turns each
``DesiredTenant`` into a Compose document (``renderers.compose``). Offline: it does not ask the engine which subnets
are taken, so a subnet is the one the planner would pick on an engine without other networks (docs/swarm.md).
Writes to standard output, or with ``--out DIR`` one ``<tenant>.compose.yaml`` per tenant.
"""

from __future__ import annotations

import sys
from pathlib import Path

from desired_state.database import make_engine
from desired_state.load import load_desired_state
from reconciler.core.diff import SubnetPool
from reconciler.core.resources import DesiredTenant
from reconciler.runtime.settings import Settings
from reconciler.runtime.wiring import build_container_defaults, build_healthcheck
from renderers.compose import compose_subnets, compose_text, holds_secrets, render_compose
from renderers.containers import Naming, render_tenant

EXIT_OK, EXIT_ERROR = 0, 1
SECRETS_WARNING = (
    "warning: the Compose file holds the tenants' environment values, secrets included; keep it private "
    "(or render with --redact)"
)


def _rendered(settings: Settings, wanted: list[str] | None) -> tuple[dict[str, DesiredTenant], list[str]]:
    engine = make_engine(settings.database_url)
    try:
        desired = load_desired_state(engine, settings.base_domain, settings.input_limits())
    finally:
        engine.dispose()
    naming = Naming(prefix=settings.name_prefix, owner=settings.owner_id)
    problems = [f"Invalid: {error}" for name, error in sorted(desired.errors.items()) if not wanted or name in wanted]
    problems += [f"error: no tenant {name!r} in the database" for name in wanted or () if name not in desired.known]
    rendered = {
        name: render_tenant(
            spec,
            naming,
            healthcheck=build_healthcheck(settings),
            defaults=build_container_defaults(settings),
            uid=desired.uids.get(name),
        )
        for name, spec in sorted(desired.tenants.items())
        if not wanted or name in wanted
    }
    return {n: t for n, t in rendered.items() if t.state != "absent"}, problems


def run(settings: Settings, tenants: list[str] | None, out: Path | None, *, redact: bool) -> int:
    rendered, problems = _rendered(settings, tenants)
    for problem in problems:
        print(problem, file=sys.stderr)
    subnets = compose_subnets(rendered, SubnetPool(settings.subnet_pool, settings.subnet_prefix))
    texts = {name: compose_text(render_compose(t, subnets[name], redact=redact), name) for name, t in rendered.items()}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (out / f"{name}.compose.yaml").write_text(text)
            print(f"wrote {out / f'{name}.compose.yaml'}", file=sys.stderr)
    else:
        sys.stdout.write("---\n".join(texts.values()))
    if not redact and any(holds_secrets(t) for t in rendered.values()):
        print(SECRETS_WARNING, file=sys.stderr)
    return EXIT_ERROR if problems else EXIT_OK

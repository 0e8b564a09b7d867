"""Plan preview: the plan a proposed edit of one tenant would produce, and the tenant's pending plan, never written.

Called by ``api.tenants`` and the console. The proposed document is validated like a write
(``desired_state.tenant_edits.validate_tenant``: the loader's checks), then put in place of the stored tenant in
the desired state the runtime loads, and planned by the runtime's own path (``Reconciler.compute``, which observes
Docker, the route files and DNS and calls ``reconciler.planning.plan_pass``), so a preview is what the next pass
would do if the edit were saved now. Nothing is written: no uid, no binding, no row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from desired_state.model import DesiredState
from desired_state.tenant_edits import validate_tenant
from reconciler.api.context import ApiContext
from reconciler.core.plan import Plan


def pending_plan(context: ApiContext, tenant: str) -> Plan:
    """What the next pass would do to ``tenant`` as things stand."""
    return context.runtime.reconciler.compute([tenant]).plan.for_tenant(tenant)


def preview_plan(context: ApiContext, tenant: str, document: Mapping[str, Any] | None) -> Plan:
    """What the next pass would do to ``tenant`` if ``document`` were saved (None: if the tenant were deleted).

    Raises ``SpecError`` for a document the loader would reject (with the loader's message)."""
    settings = context.settings
    spec = None
    if document is not None:
        with context.engine.begin() as connection:
            spec = validate_tenant(connection, document, settings.base_domain, settings.input_limits())

    def edit(desired: DesiredState) -> DesiredState:
        tenants = dict(desired.tenants)
        errors = dict(desired.errors)
        errors.pop(tenant, None)
        if spec is None:
            tenants.pop(tenant, None)
        else:
            tenants[tenant] = spec
        return replace(desired, tenants=tenants, errors=errors)

    # Removing a tenant the database no longer has is planned by full passes only (``Reconciler.compute``).
    scope = None if spec is None else [tenant]
    return context.runtime.reconciler.compute(scope, edit=edit).plan.for_tenant(tenant)

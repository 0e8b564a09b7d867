"""The database tables: the contract between the Laravel web UI and the reconciler.

First stage of the pipeline: the UI (or ``yaml_io.import_yaml``) writes rows here, ``load.load_desired_state``
reads them into validated specs, and ``status.write_status`` writes the reconciler's view back. The schema
itself is created by the Alembic migrations in ``desired_state/migrations``; these classes must match them.

Laravel conventions, so Eloquent models need no configuration: plural snake_case table names, ``bigint id``
primary keys, nullable ``created_at`` / ``updated_at``. Columns deliberately accept values the reconciler
will reject (negative replicas, ``memory = 'lots'``, unknown services): validation happens in
``desired_state.specs`` per tenant so that the error can be reported on that tenant's status instead of
the database refusing the UI's write with a message nobody sees. docs/schema.md describes every column.

This module is where every table is imported from: the classes live in modules by job (``table_types``: ``Base``
and the column types; ``tenant_tables``: what the UI writes; ``status_tables``: what the reconciler writes back;
``operation_tables``: backups and operations; and the ``*_tables`` modules below), re-exported here, and importing
this module registers all of them on ``Base.metadata`` (which the Alembic environment and ``database`` use).
"""

from __future__ import annotations

from desired_state.operation_tables import (
    BackupPolicy,
    BackupRow,
    DataVolumeRow,
    OperationRequest,
    OperationRow,
    TenantPin,
)
from desired_state.status_tables import TenantStatusRow, TenantUsageRow
from desired_state.table_types import Base, BigIntId, TimestampsMixin, UtcDateTime
from desired_state.tenant_tables import CatalogService, Tenant, TenantService, TenantServiceRoute, TenantServiceVersion

__all__ = [
    "BackupPolicy",
    "BackupRow",
    "Base",
    "BigIntId",
    "CatalogService",
    "DataVolumeRow",
    "OperationRequest",
    "OperationRow",
    "Tenant",
    "TenantPin",
    "TenantService",
    "TenantServiceRoute",
    "TenantServiceVersion",
    "TenantStatusRow",
    "TenantUsageRow",
    "TimestampsMixin",
    "UtcDateTime",
]

# The tables of sites (docs/sites.md), canary analysis and checks (docs/operations.md), and the HTTP API's tokens,
# audit log and alert log (reconciler.api) have their own modules to keep this one small; importing them registers
# their tables here.
from desired_state import access_tables as _access_tables  # noqa: F401
from desired_state import alert_log as _alert_log  # noqa: F401
from desired_state import canary_tables as _canary_tables  # noqa: F401
from desired_state import check_tables as _check_tables  # noqa: F401
from desired_state import condition_history as _condition_history  # noqa: F401

# Swarm data placements (docs/swarm.md), likewise in a module of their own.
from desired_state import placement_tables as _placement_tables  # noqa: F401
from desired_state import site_tables as _site_tables  # noqa: F401

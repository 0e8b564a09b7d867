"""What changed since: every tenant's generation and a digest of the catalog, in two small queries.

The loop (``runtime.service.loop``) parks a tenant whose pass failed permanently until its generation or the
catalog changes; it asks here on each periodic resync instead of loading the whole desired state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from desired_state.load import catalog_rows
from desired_state.tables import Tenant


@dataclass(frozen=True)
class Generations:
    tenants: dict[str, int] = field(default_factory=dict)
    catalog: str = ""  # digest of every catalog row as stored


def read_generations(engine: Engine) -> Generations:
    with engine.connect() as connection:
        tenants = {name: int(gen) for name, gen in connection.execute(select(Tenant.name, Tenant.generation))}
        rows = catalog_rows(connection)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Generations(tenants=tenants, catalog=digest)

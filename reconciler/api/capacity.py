"""Host capacity: memory and CPUs the Docker engine's host has, what the tenants reserve (their limits) and what
they use now. For ``GET /api/v1/capacity`` and the console's tenant list.

Total: the engine's own ``/info`` (``MemTotal``, ``NCPU``), so it is the host the containers run on, wherever the
API runs. Reserved: from the desired state, every running tenant's services, limit times replicas (what the
limits promise, not what is used). In use: the ``tenant_usages`` rows ``reconciler run`` writes.
"""

from __future__ import annotations

from desired_state.load import load_desired_state
from desired_state.usage import read_usages
from reconciler.api.context import ApiContext
from reconciler.api.models import CapacityOut


def capacity(context: ApiContext) -> CapacityOut:
    info = context.runtime.docker.api.info()
    desired = load_desired_state(context.engine, context.settings.base_domain, context.settings.input_limits())
    memory = cpus = 0.0
    for spec in desired.tenants.values():
        if spec.state != "running":
            continue
        for service in spec.services:
            memory += service.memory * service.replicas
            cpus += service.cpus * service.replicas
    usages = read_usages(context.engine)
    return CapacityOut(
        memory_total_bytes=int(info.get("MemTotal", 0)),
        cpus_total=int(info.get("NCPU", 0)),
        memory_reserved_bytes=int(memory),
        cpus_reserved=round(cpus, 3),
        memory_used_bytes=sum(u.memory_bytes for u in usages),
        cpus_used=round(sum(u.cpu_cores or 0.0 for u in usages), 3),
        tenants_running=sum(1 for spec in desired.tenants.values() if spec.state == "running"),
    )

"""Host capacity: memory and CPUs the Docker engine's host has, what the tenants reserve (their limits) and what
they use now. For ``GET /api/v1/capacity`` and the console's tenant list.

Total: the engine's own ``/info`` (``MemTotal``, ``NCPU``), so it is the host the containers run on, wherever the
API runs. Reserved: from the desired state, every running tenant's services, limit times replicas (what the
limits promise, not what is used). In use: the ``tenant_usages`` rows ``reconciler run`` writes.

With ``RECONCILER_PROMETHEUS_URL`` set, total and in use are the host's own figures from the node exporter
(``api.host_figures``: memory the kernel counts as used, CPUs busy over the last minute, whoever uses them); reserved
stays the tenants' limits. When Prometheus has no node figures the engine's and the tables' are given
(``source`` says which).
"""

from __future__ import annotations

from desired_state.load import load_desired_state
from desired_state.usage import read_usages
from reconciler.api.context import ApiContext
from reconciler.api.host_figures import host_figures
from reconciler.api.models import CapacityOut


def capacity(context: ApiContext) -> CapacityOut:
    desired = load_desired_state(context.engine, context.settings.base_domain, context.settings.input_limits())
    memory = cpus = 0.0
    for spec in desired.tenants.values():
        if spec.state != "running":
            continue
        for service in spec.services:
            memory += service.memory * service.replicas
            cpus += service.cpus * service.replicas
    running = sum(1 for spec in desired.tenants.values() if spec.state == "running")
    url = context.settings.prometheus_url
    host = host_figures(url) if url else None
    if host is not None:
        return CapacityOut(
            source="prometheus",
            memory_total_bytes=host.memory_total_bytes,
            cpus_total=host.cpus_total,
            memory_reserved_bytes=int(memory),
            cpus_reserved=round(cpus, 3),
            memory_used_bytes=host.memory_used_bytes,
            cpus_used=host.cpus_used,
            tenants_running=running,
        )
    info = context.runtime.docker.api.info()
    usages = read_usages(context.engine)
    return CapacityOut(
        source="engine",
        memory_total_bytes=int(info.get("MemTotal", 0)),
        cpus_total=int(info.get("NCPU", 0)),
        memory_reserved_bytes=int(memory),
        cpus_reserved=round(cpus, 3),
        memory_used_bytes=sum(u.memory_bytes for u in usages),
        cpus_used=round(sum(u.cpu_cores or 0.0 for u in usages), 3),
        tenants_running=running,
    )

"""Resource usage arithmetic (pure): container samples → per-tenant, per-service figures.

The usage collector (``runtime.telemetry.usage``) gets cumulative CPU time and current memory of every owned container
from ``drivers.usage``; here two samples of a container become the cores it used between them, and containers
are summed per (tenant, service). No I/O and no clock: the sample times come in with the samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ContainerSample:
    container_id: str
    tenant: str
    service: str
    # Working set, as `docker stats` shows it: usage minus the inactive file cache the kernel can drop.
    memory_bytes: int
    memory_limit_bytes: int | None  # None: no limit
    cpu_seconds: float  # cumulative CPU time since the container started
    at: float  # monotonic seconds when read


@dataclass(frozen=True)
class ServiceUsage:
    tenant: str
    service: str
    memory_bytes: int
    memory_limit_bytes: int | None  # sum of the containers' limits; None when any container is unlimited
    cpu_cores: float | None  # CPU seconds per second; None until some container was sampled twice
    containers: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.service)


def cpu_cores(previous: ContainerSample | None, current: ContainerSample) -> float | None:
    """Cores used between two samples of one container; None without a usable earlier sample."""
    if previous is None or current.at <= previous.at:
        return None
    used = current.cpu_seconds - previous.cpu_seconds
    if used < 0:  # the counter restarted: the container was restarted in place between the samples
        return None
    return used / (current.at - previous.at)


def aggregate(previous: Mapping[str, ContainerSample], current: Iterable[ContainerSample]) -> list[ServiceUsage]:
    """Sum the current samples per (tenant, service), sorted; ``previous`` is the last sample per container id."""
    groups: dict[tuple[str, str], list[ContainerSample]] = {}
    for sample in current:
        groups.setdefault((sample.tenant, sample.service), []).append(sample)
    usages = []
    for (tenant, service), samples in sorted(groups.items()):
        rates = [r for s in samples if (r := cpu_cores(previous.get(s.container_id), s)) is not None]
        limits = [s.memory_limit_bytes for s in samples if s.memory_limit_bytes is not None]
        usages.append(
            ServiceUsage(
                tenant=tenant,
                service=service,
                memory_bytes=sum(s.memory_bytes for s in samples),
                memory_limit_bytes=sum(limits) if len(limits) == len(samples) else None,
                cpu_cores=sum(rates) if rates else None,
                containers=len(samples),
            )
        )
    return usages

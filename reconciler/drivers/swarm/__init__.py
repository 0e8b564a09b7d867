"""The Docker Swarm mode engine driver (``RECONCILER_ENGINE=swarm``): see ``driver.SwarmDriver`` and docs/swarm.md."""

from reconciler.drivers.swarm.driver import SwarmDriver, SwarmTimeouts
from reconciler.drivers.swarm.spec import StopPolicy

__all__ = ["StopPolicy", "SwarmDriver", "SwarmTimeouts"]

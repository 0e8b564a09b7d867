"""Docker driver: observe and act through the Engine API (docker SDK ``APIClient``); helpers and pulls via the CLI.

Observation is one snapshot per pass with a constant number of list calls (containers, networks, volumes),
whatever the number of tenants; the results are converted at once into the core's frozen values. Containers
marked in ``inspections`` (``drivers.docker.inspect``) are inspected on top, one API call each, counted apart as
``calls["inspect"]``. The pass's mutations (create and start, stop, remove, update, networks, volumes) are HTTP
requests on the engine's socket, a few milliseconds each, bounded by ``DockerTimeouts.mutation`` (the client's
timeout); what they send is built in ``drivers.docker.create``. Image pulls, helper containers (backups, restores,
migrations, with their own long timeouts) stay on the CLI through python-on-whales. Library errors become the
project's errors (``drivers.docker.errors``). Thread-safe: the executor calls one driver from several workers at
once. Called by the runtime's executor, loop and operations.

The driver is assembled from one module per job, each on ``drivers.docker.connection.DockerConnection`` (clients,
timeouts, call counts): ``observe`` (snapshot and re-reads), ``container_actions``, ``resource_actions`` (networks
and volumes) and ``helper_actions`` (helper containers).
"""

from __future__ import annotations

import logging

from reconciler.drivers.docker.connection import KILL_AFTER, POOL_SIZE, DockerTimeouts
from reconciler.drivers.docker.container_actions import STOP_TIMEOUT, ContainerActions
from reconciler.drivers.docker.helper_actions import HelperActions
from reconciler.drivers.docker.observe import DockerObserver
from reconciler.drivers.docker.resource_actions import ResourceActions

__all__ = ["KILL_AFTER", "POOL_SIZE", "STOP_TIMEOUT", "DockerDriver", "DockerTimeouts"]

log = logging.getLogger(__name__)


class DockerDriver(DockerObserver, ContainerActions, ResourceActions, HelperActions):
    """Observe and act on one Docker engine for one owner; made by constructor (``DockerConnection.__init__``)."""

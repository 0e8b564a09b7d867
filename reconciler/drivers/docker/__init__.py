"""The Docker driver (``DockerDriver``): observe and act through the Engine API (docker SDK ``APIClient``); image
pulls and helper containers through the CLI (python-on-whales).

Modules: ``driver`` (``DockerDriver``, assembled from: ``connection`` (clients, timeouts, call counts),
``observe`` (the snapshot and re-reads), ``container_actions``, ``resource_actions`` (networks and volumes),
``helper_actions`` (helper containers)), ``create`` (what the Engine API is given to create a container,
network or volume), ``inspect`` (which containers to inspect, and what inspecting shows), ``events`` (the event
stream), ``helpers`` (short-lived helper containers), ``errors`` (library errors into the project's own).
"""

from reconciler.core.errors import SubnetTaken
from reconciler.drivers.docker.driver import DockerDriver, DockerTimeouts
from reconciler.drivers.docker.events import DockerEvent
from reconciler.drivers.docker.helpers import HelperResult
from reconciler.drivers.docker.inspect import InspectionMarks

__all__ = ["DockerDriver", "DockerEvent", "DockerTimeouts", "HelperResult", "InspectionMarks", "SubnetTaken"]

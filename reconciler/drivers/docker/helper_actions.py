"""The Docker driver's helper containers: short-lived ones run to completion, long-running ones started and removed.

Called through ``DockerDriver`` by the runtime's operations (``runtime.operations``: backups, restores and their
tests, migrations, the maintenance answer during a restore, the migration guard), the upgrade gate among them during
a pass's apply, and by the data node (``runtime.data_node``). Helpers carry labels *without* the managed label, so
no snapshot sees them. They run on the CLI (python-on-whales): ``run_helper`` with its own long timeout
(``drivers.docker.helpers`` streams the bytes), the others under the mutation bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import BinaryIO

from reconciler.core.resources import LABEL_TENANT
from reconciler.drivers.docker.connection import DockerConnection
from reconciler.drivers.docker.helpers import HelperResult, HelperRun, run_helper


class HelperActions(DockerConnection):
    """Helper containers: run to completion, start detached, list, remove."""

    def run_helper(
        self,
        image: str,
        command: list[str],
        *,
        name: str,
        volume: str,
        labels: dict[str, str],
        timeout: float,
        network: str | None = None,
        env: dict[str, str] | None = None,
        read_only: bool = False,
        stdin: BinaryIO | None = None,
        stdout: Callable[[bytes], None] | None = None,
    ) -> HelperResult:
        """Run a short-lived container with ``volume`` at /data to completion, streaming bytes in and out.

        ``stdin`` (an open binary file) is fed to the command; with ``stdout`` every chunk the command writes goes
        to that callback (an archive), otherwise it is collected as text with stderr. The container runs with
        ``--rm``, no log driver (an archive streamed out must not also land in a log file) and, without
        ``network``, no network at all. Give it labels *without* the managed label, so the snapshot never sees it.
        Past ``timeout`` the container is removed and ``TransientError`` raised; Docker's own failure to run it
        (no such image, ...) is raised as the project's error; the command's exit code is returned otherwise.
        """
        run = HelperRun(image, command, name, volume, labels, timeout, network, env, read_only)
        self._count("mutate")
        return run_helper(list(self.helper_cli.client_config.docker_cmd), run, self._remove_helper, stdin, stdout)

    def start_helper(self, image: str, command: list[str], *, name: str, network: str, labels: dict[str, str]) -> None:
        """Start a long-running helper detached on ``network`` (the maintenance answer during a restore): no
        volume, no restart, 16 MiB. Labels without the managed label: the snapshot never sees it. ``remove_helper``
        ends it."""
        with self._mutate("start helper", name, labels.get(LABEL_TENANT)):
            self.cli.container.run(
                image, command, name=name, detach=True, labels=labels, networks=[network], restart="no",
                pull="never", memory=16 * 1024 * 1024, security_options=["no-new-privileges"],
            )  # fmt: skip

    def remove_helper(self, name: str) -> None:
        """Remove a helper container by name, running or not; one that is gone already is fine."""
        self._remove_helper(name)

    def helpers(self, labels: dict[str, str], name_prefix: str = "") -> list[tuple[str, str]]:
        """(name, state) of the containers carrying all ``labels`` (helpers: no managed label), one list call.

        Used before a migration: a helper of an earlier migration that still exists may still be running it.
        """
        filters = {"label": [f"{key}={value}" for key, value in sorted(labels.items())]}
        found = self._list("containers", all=True, filters=filters)
        named = [((raw.get("Names") or ["/?"])[0].lstrip("/"), str(raw.get("State", "unknown"))) for raw in found]
        return sorted((name, state) for name, state in named if name.startswith(name_prefix))

    def _remove_helper(self, name: str) -> None:
        from python_on_whales.exceptions import DockerException

        with contextlib.suppress(DockerException):
            self.cli.container.remove(name, force=True)

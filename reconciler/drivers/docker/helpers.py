"""Short-lived helper containers (backup, restore, migration) run to completion with bytes streamed in and out.

``DockerDriver.run_helper`` delegates here. A helper is one ``docker run --rm`` subprocess, bounded by its own
timeout (a backup may take an hour; the CLI timeout of other mutations does not apply).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO

from reconciler.core.resources import DATA_MOUNT, LABEL_TENANT
from reconciler.drivers.docker.errors import DOCKER_RUN_FAILED, docker_error, is_permanent

log = logging.getLogger(__name__)

# Bytes read per chunk from a helper's output, and how much of its text output is kept (the end of it: that is
# where a failing command says why).
HELPER_CHUNK = 64 * 1024
HELPER_OUTPUT_LIMIT = 256 * 1024


@dataclass(frozen=True)
class HelperResult:
    exit_code: int
    output: str  # stderr, and stdout when it was not streamed to a callback

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class HelperRun:
    """What to run: ``volume`` at /data, labels *without* the managed label (the snapshot must never see it)."""

    image: str
    command: list[str]
    name: str
    volume: str
    labels: dict[str, str]
    timeout: float
    network: str | None = None
    env: dict[str, str] | None = None
    read_only: bool = False

    def argv(self, docker_cmd: Sequence[str], interactive: bool) -> list[str]:
        argv = [*docker_cmd, "run", "--rm", "--name", self.name, "--log-driver", "none"]
        mount = f"{self.volume}:{DATA_MOUNT}{':ro' if self.read_only else ''}"
        argv += ["--network", self.network or "none", "--volume", mount]
        for key, value in sorted(self.labels.items()):
            argv += ["--label", f"{key}={value}"]
        for key, value in sorted((self.env or {}).items()):
            argv += ["--env", f"{key}={value}"]
        if interactive:
            argv.append("--interactive")
        return [*argv, self.image, *self.command]


def run_helper(
    docker_cmd: Sequence[str],
    run: HelperRun,
    remove: Callable[[str], None],
    stdin: BinaryIO | None = None,
    stdout: Callable[[bytes], None] | None = None,
) -> HelperResult:
    """Run to completion; past ``run.timeout`` the container is removed (``remove``) and a transient error raised."""
    tenant = run.labels.get(LABEL_TENANT)
    log.debug("tenant=%s helper %s: %s", tenant, run.name, " ".join(run.command))
    process = subprocess.Popen(
        run.argv(docker_cmd, stdin is not None),
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    errors = _Tail(process.stderr)
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        remove(run.name)
        process.kill()

    timer = threading.Timer(run.timeout, expire)
    timer.daemon = True
    timer.start()
    collected = bytearray()
    try:
        for chunk in iter(lambda: process.stdout.read(HELPER_CHUNK), b""):  # type: ignore[union-attr]
            if stdout is not None:
                stdout(chunk)
            elif len(collected) < HELPER_OUTPUT_LIMIT:
                collected += chunk
        code = process.wait()
    except BaseException:
        # The consumer failed (disk full, interrupted): the helper must not outlive us.
        remove(run.name)
        process.kill()
        process.wait()
        raise
    finally:
        timer.cancel()
        errors.join()
    output = (bytes(collected) + errors.data).decode(errors="replace")
    if timed_out.is_set():
        message = f"helper {run.name} did not finish within {run.timeout:g}s and was removed"
        raise docker_error(message, permanent=False, operation="run helper", key=run.name, tenant=tenant)
    if code == DOCKER_RUN_FAILED:
        # `docker run` itself failed (daemon error, image missing): the command never ran.
        permanent = is_permanent(output) or "Unable to find image" in output
        message = f"helper {run.name} could not run: {output.strip()}"
        raise docker_error(message, permanent=permanent, operation="run helper", key=run.name, tenant=tenant)
    return HelperResult(exit_code=code, output=output)


class _Tail:
    """Reads a pipe to the end on a thread, keeping the last ``HELPER_OUTPUT_LIMIT`` bytes."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, name="helper-stderr", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for chunk in iter(lambda: self._pipe.read(HELPER_CHUNK), b""):
            self._data += chunk
            del self._data[:-HELPER_OUTPUT_LIMIT]

    def join(self) -> None:
        self._thread.join()

    @property
    def data(self) -> bytes:
        return bytes(self._data)

"""How the Docker driver turns library errors into the project's own (``reconciler.core.errors``).

python-on-whales raises ``DockerException`` with the CLI's stderr (``translate``, ``Mutation``: image pulls and
helpers); the docker SDK raises ``APIError`` with the daemon's reason, or a ``requests`` error when the engine
does not answer (``translate_api``, ``ApiMutation``: the pass's mutations on the Engine API). What the message
says decides permanent (retrying cannot help: the image is missing, a limit is out of range, the engine rejects a
parameter) or transient (everything else: the engine is busy, a name is still in use, a call timed out). Every
error names the system ("docker"), the operation and the key of the object, never a command line or a request
body (env values are secrets). Used by the other modules of this package only.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal

import docker.errors
import requests.exceptions

from reconciler.core.errors import PermanentError, ReconcileError, TransientError

if TYPE_CHECKING:
    # Imported where a CLI error is handled: python-on-whales loads only with the CLI (``DockerDriver.cli``).
    from python_on_whales.exceptions import DockerException

SYSTEM = "docker"
# Exit status of `docker run` when the daemon could not run the container at all (the command never ran).
DOCKER_RUN_FAILED = 125
# Exit statuses of coreutils `timeout` around a CLI call: the call timed out (124) or ignored TERM and was
# killed (137). The daemon may still finish the operation; the next pass sees whatever it did.
TIMED_OUT = frozenset({124, 137})
PERMANENT_HINTS = (
    "No such image",
    "manifest unknown",
    "pull access denied",
    "repository does not exist",
    "invalid reference format",
    "Minimum memory limit",
    "Range of CPUs",
    "invalid argument",
)
# The Engine API's status for a request it rejects as malformed (moby errdefs.InvalidParameter: an invalid
# option, a limit out of range): the same request fails the same way every time.
BAD_PARAMETER = 400


def is_permanent(text: str) -> bool:
    return any(hint in text for hint in PERMANENT_HINTS)


def docker_error(
    message: str, *, permanent: bool, operation: str, key: str, tenant: str | None, delay: float | None = None
) -> ReconcileError:
    kind = PermanentError if permanent else TransientError
    return kind(message, tenant=tenant, system=SYSTEM, operation=operation, key=key, delay=delay)


def translate(exc: DockerException, operation: str, key: str, tenant: str | None, timeout: float) -> ReconcileError:
    """One CLI failure as the project's error: ``<operation> <key>: <first line of stderr>``."""
    what = f"{operation} {key}"
    if exc.return_code in TIMED_OUT:
        return docker_error(
            f"{what}: no answer within {timeout:g}s", permanent=False, operation=operation, key=key, tenant=tenant
        )
    # Never str(exc): python-on-whales quotes the whole command line there, env values (secrets) included.
    text = (exc.stderr or "").strip() or f"the docker CLI exited with code {exc.return_code}"
    from python_on_whales.exceptions import NoSuchImage

    permanent = isinstance(exc, NoSuchImage) or is_permanent(text)
    return docker_error(f"{what}: {_short(text)}", permanent=permanent, operation=operation, key=key, tenant=tenant)


def translate_api(exc: Exception, operation: str, key: str, tenant: str | None, timeout: float) -> ReconcileError:
    """One Engine API failure as the project's error: ``<operation> <key>: <the daemon's reason>``."""
    what = f"{operation} {key}"
    if isinstance(exc, requests.exceptions.Timeout):
        return docker_error(
            f"{what}: no answer within {timeout:g}s", permanent=False, operation=operation, key=key, tenant=tenant
        )
    if isinstance(exc, docker.errors.APIError):
        # The daemon's reason only: str(exc) adds the request URL and the HTTP status line.
        text = str(exc.explanation or "").strip() or f"the engine answered {exc.status_code}"
        permanent = (
            isinstance(exc, docker.errors.ImageNotFound) or exc.status_code == BAD_PARAMETER or is_permanent(text)
        )
    elif isinstance(exc, requests.exceptions.ConnectionError):
        text, permanent = f"engine not reachable ({_short(str(exc), 200)})", False
    else:
        text, permanent = _short(str(exc)) or type(exc).__name__, is_permanent(str(exc))
    return docker_error(f"{what}: {_short(text)}", permanent=permanent, operation=operation, key=key, tenant=tenant)


def _short(text: str, limit: int = 300) -> str:
    """The daemon's reason without the CLI's usage hints; long outputs shortened."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("Run 'docker")]
    joined = " ".join(lines) if lines else text
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


class _Guard:
    """What one mutation is (for its error message); subclasses translate their client's errors on exit."""

    def __init__(self, operation: str, key: str, tenant: str | None, timeout: float) -> None:
        self.operation = operation
        self.key = key
        self.tenant = tenant
        self.timeout = timeout

    def __enter__(self) -> None:
        return None


class Mutation(_Guard):
    """Context manager around one CLI mutation: python-on-whales errors become the project's error types."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        # Not loaded yet: no CLI call ran, so ``exc`` cannot be python-on-whales' (and loading it is not needed).
        if exc is None or "python_on_whales.exceptions" not in sys.modules:
            return False
        from python_on_whales.exceptions import DockerException

        if not isinstance(exc, DockerException):
            return False
        raise translate(exc, self.operation, self.key, self.tenant, self.timeout) from exc


class ApiMutation(_Guard):
    """Context manager around one Engine API mutation: docker SDK and ``requests`` errors become the project's."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
            raise translate_api(exc, self.operation, self.key, self.tenant, self.timeout) from exc
        return False

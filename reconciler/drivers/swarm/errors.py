"""How the Swarm driver turns docker SDK errors into the project's own (``reconciler.core.errors``).

A request the manager rejects as malformed (HTTP 400: an invalid spec, a limit out of range) or names an image that
cannot exist is permanent; everything else (the manager busy or electing, a name still in use, a network with
endpoints still attached, a timeout, a refused connection) is transient. Messages name the system ("swarm"), the
operation and the object, never a request body (env values are secrets). Used by this package only.
"""

from __future__ import annotations

from typing import Literal

import docker.errors
import requests.exceptions

from reconciler.core.errors import PermanentError, ReconcileError, SubnetTaken, TransientError

SYSTEM = "swarm"
BAD_PARAMETER = 400
PERMANENT_HINTS = ("invalid reference format", "manifest unknown", "repository does not exist", "invalid argument")
# The manager's text when a subnet is in use by another network: the executor then picks another.
SUBNET_TAKEN_HINTS = ("overlaps", "already in use", "pool overlaps")


def _text(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or "").strip() or f"the manager answered {exc.status_code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "manager not reachable"
    return type(exc).__name__


def translate(exc: BaseException, operation: str, key: str, tenant: str | None) -> ReconcileError:
    text = _text(exc)
    if len(text) > 300:
        text = text[:297] + "..."
    message = f"{operation} {key}: {text}"
    if operation == "create network" and any(h in text.lower() for h in SUBNET_TAKEN_HINTS):
        return SubnetTaken(message, tenant=tenant, system=SYSTEM, operation=operation, key=key)
    permanent = (isinstance(exc, docker.errors.APIError) and exc.status_code == BAD_PARAMETER) or any(
        h in text for h in PERMANENT_HINTS
    )
    kind = PermanentError if permanent else TransientError
    return kind(message, tenant=tenant, system=SYSTEM, operation=operation, key=key)


class Guard:
    """Context manager around one manager request: SDK and ``requests`` errors become the project's."""

    def __init__(self, operation: str, key: str, tenant: str | None = None) -> None:
        self.operation = operation
        self.key = key
        self.tenant = tenant

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
            raise translate(exc, self.operation, self.key, self.tenant) from exc
        return False

"""Engine API failures as the project's errors (``drivers.docker.errors.translate_api``): the classification the
CLI path had, the daemon's reason without URL or body. The real engine's answers: test_docker_driver_api.py."""

from __future__ import annotations

import json

import docker.errors
import pytest
import requests

from reconciler.core.errors import PermanentError, TransientError
from reconciler.drivers.docker.errors import translate_api

URL = "http+docker://localhost/v1.41/containers/create?name=erp-acme-a-0-1"


def _api_error(status: int, message: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps({"message": message}).encode()
    response.url = URL
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        try:
            docker.errors.create_api_error_from_http_exception(exc)
        except docker.errors.APIError as api_error:
            return api_error
    raise AssertionError("no error raised")


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (404, "No such image: erp/does-not-exist:1", PermanentError),
        (400, "Minimum memory limit allowed is 6MB", PermanentError),
        (400, "some option the engine rejects", PermanentError),
        (409, 'Conflict. The container name "/erp-acme-a-0-1" is already in use by container "4f2a"', TransientError),
        (409, "removal of container erp-acme-a-0-1 is already in progress", TransientError),
        (404, "No such container: erp-acme-a-0-1", TransientError),
        (500, "Pool overlaps with other one on this address space", TransientError),
    ],
)
def test_the_daemons_reason_decides_and_is_quoted_alone(status: int, message: str, kind: type) -> None:
    error = translate_api(_api_error(status, message), "run container", "erp-acme-a-0-1", "acme", 120)
    assert type(error) is kind
    assert str(error) == f"run container erp-acme-a-0-1: {message} (docker, {error.kind})"
    assert (error.operation, error.key, error.tenant) == ("run container", "erp-acme-a-0-1", "acme")


def test_no_answer_and_no_engine_are_transient() -> None:
    timeout = translate_api(requests.exceptions.ReadTimeout("read timed out"), "stop container", "erp-x", "x", 130)
    assert isinstance(timeout, TransientError)
    assert str(timeout) == "stop container erp-x: no answer within 130s (docker, transient)"
    refused = translate_api(requests.exceptions.ConnectionError("refused"), "create volume", "erp-x-data", "x", 120)
    assert isinstance(refused, TransientError)
    assert str(refused) == "create volume erp-x-data: engine not reachable (refused) (docker, transient)"

"""Swarm services get the Docker engine's container defaults (issue 13): the spec, the observed values, the drift."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from reconciler.core.resources import ContainerDefaults
from reconciler.core.service_diff import hardening_drift, service_drift
from reconciler.core.services import Service
from reconciler.drivers.swarm.observe import service_from_list
from reconciler.drivers.swarm.spec import service_spec

WANT = Service(
    name="erp-acme-a",
    tenant="acme",
    service="a",
    track="",
    image="reg:5000/erp/demo-svc:1",
    replicas=2,
    spec_hash="h1",
    network="erp-acme",
    volume=None,
    node=None,
    port=8080,
    pids_limit=512,
    log_max_size="10m",
    log_max_file=3,
    no_new_privileges=True,
)


def _observed(spec: dict[str, Any], *, privileges: bool) -> Service:
    template = spec["task_template"]
    raw = {
        "ID": "svc1",
        "Version": {"Index": 1},
        "Spec": {"Name": spec["name"], "Labels": spec["labels"], "TaskTemplate": template, "Mode": spec["mode"]},
    }
    return service_from_list(raw, {}, privileges=privileges)


def test_the_spec_carries_log_rotation_pids_and_no_new_privileges_where_the_api_takes_it() -> None:
    new = service_spec(WANT, privileges=True)
    template = new["task_template"]
    assert template["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "3"}}
    assert template["Resources"]["Limits"]["Pids"] == 512
    assert template["ContainerSpec"]["Privileges"] == {"NoNewPrivileges": True}
    # An older manager (API before 1.44) would drop the field silently: it is not sent at all.
    assert "Privileges" not in service_spec(WANT, privileges=False)["task_template"]["ContainerSpec"]
    # Log options unset by the operator: the node engine's own.
    assert "LogDriver" not in service_spec(replace(WANT, log_max_size=None, log_max_file=None))["task_template"]


def test_what_the_spec_gives_reads_back_without_drift() -> None:
    for privileges in (True, False):
        have = _observed(service_spec(WANT, privileges=privileges), privileges=privileges)
        assert (have.pids_limit, have.log_max_size, have.log_max_file) == (512, "10m", 3)
        assert have.no_new_privileges is (True if privileges else None)
        assert hardening_drift(WANT, have) == [], privileges


def test_hand_edits_of_the_defaults_are_drift_by_name() -> None:
    have = replace(WANT, pids_limit=None, log_max_size="1g", log_max_file=1, no_new_privileges=False)
    assert service_drift(WANT, have) == [
        "pids limit none -> 512",
        "log rotation 1g x1 -> 10m x3",
        "no-new-privileges off -> on",
    ]
    # Not known (an older manager): never drift; the plan says it cannot be applied instead.
    assert service_drift(WANT, replace(WANT, no_new_privileges=None)) == []
    # A default the operator left unset is not enforced.
    bare = replace(WANT, pids_limit=None, log_max_size=None, log_max_file=None, no_new_privileges=False)
    assert service_drift(bare, have) == []


def test_an_older_manager_names_what_it_cannot_apply() -> None:
    from reconciler.drivers.swarm import SwarmDriver

    driver = SwarmDriver.__new__(SwarmDriver)
    driver.privileges = False
    driver.api = type("Api", (), {"api_version": "1.41"})()  # type: ignore[assignment]
    [gap] = driver.hardening_gaps(ContainerDefaults(no_new_privileges=True))
    assert "no-new-privileges is not applied" in gap and "1.41" in gap and "1.44" in gap
    assert driver.hardening_gaps(ContainerDefaults(no_new_privileges=False)) == []
    driver.privileges = True
    assert driver.hardening_gaps(ContainerDefaults(no_new_privileges=True)) == []

"""What the console's tenant forms mean: the edit form's fields applied to a stored document (replicas, version
weights, allow and deny lists, state), and the new-tenant form as a document. Pure; called by ``console.pages``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def _number(value: str | None, fallback: Any) -> Any:
    text = (value or "").strip()
    if not text:
        return fallback
    try:
        return int(text)
    except ValueError:
        return text  # kept as typed: the loader's validation names it


def _cidrs(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").replace(",", "\n").splitlines() if part.strip()]


def edited_document(stored: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """``stored`` with the edit form's values; fields the form does not have are kept as they are."""
    document = copy.deepcopy(dict(stored))
    if form.get("state"):
        document["state"] = form["state"]
    services = document.setdefault("services", {})
    for name, service in services.items():
        service["replicas"] = _number(form.get(f"replicas-{name}"), service.get("replicas", 1))
        versions = service.get("versions") or []
        for index, version in enumerate(versions):
            version["weight"] = _number(form.get(f"weight-{name}-{index}"), version.get("weight", 1))
        if f"allow-{name}" in form or f"deny-{name}" in form:
            allow, deny = _cidrs(form.get(f"allow-{name}")), _cidrs(form.get(f"deny-{name}"))
            route = dict(service.get("route") or {})
            route["allow"], route["deny"] = allow, deny
            if allow or deny or service.get("route") is not None:
                service["route"] = route
    return document


def new_document(form: Mapping[str, str]) -> dict[str, Any]:
    services = [s.strip() for s in (form.get("services") or "").replace(",", " ").split() if s.strip()]
    replicas = _number(form.get("replicas"), 1)
    return {
        "name": (form.get("name") or "").strip(),
        "domain": (form.get("domain") or "").strip(),
        "state": "running",
        "services": {service: {"replicas": replicas} for service in services},
    }

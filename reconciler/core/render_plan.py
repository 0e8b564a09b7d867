"""Plan rendering for people (``reconciler plan``, terraform style) and machines (``--json``). Pure.

Env values are never printed: a container shows its env keys and a digest of the values, so a changed secret is
visible as a changed digest. ``render_json(plan, show_values=True)`` includes them, for an operator who asks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from reconciler.core.dns import RRset
from reconciler.core.plan import Change, Plan, Resource
from reconciler.core.resources import Container, Network
from reconciler.core.routes import RouteFile
from reconciler.core.services import Service
from reconciler.core.sites import SITE_KEY, SiteFile

_MIB = 1024 * 1024


def env_digest(env: tuple[tuple[str, str], ...]) -> str:
    return hashlib.sha256(json.dumps(sorted(env)).encode()).hexdigest()[:12]


def _summary(resource: Resource | None) -> str:
    if isinstance(resource, Service):
        where = f"on {resource.node}" if resource.node else "spread"
        parts = [resource.image, f"x{resource.replicas}", where]
        if resource.memory is not None:
            parts.append(f"mem={resource.memory // _MIB}M")
        if resource.env:
            parts.append(f"env={len(resource.env)} keys@{env_digest(resource.env)}")
        return " ".join(parts)
    if isinstance(resource, Container):
        parts = [resource.image]
        if resource.memory is not None:
            parts.append(f"mem={resource.memory // _MIB}M")
        if resource.cpus is not None:
            parts.append(f"cpus={resource.cpus:g}")
        if resource.env:
            parts.append(f"env={len(resource.env)} keys@{env_digest(resource.env)}")
        return " ".join(parts)
    if isinstance(resource, Network):
        return f"subnet={resource.subnet}" if resource.subnet else ""
    if isinstance(resource, RRset):
        return f"{', '.join(resource.records)} ttl={resource.ttl}"
    if isinstance(resource, SiteFile):
        return resource.file
    if isinstance(resource, RouteFile):
        routers = len(resource.table.routers)
        return f"{routers} router{'s' if routers != 1 else ''}" if routers else ""
    return ""


def _line(change: Change) -> str:
    symbol = change.action.value
    detail = _summary(change.after or change.before)
    if change.operation in ("start", "stop"):
        detail = change.operation
    before, after = change.before, change.after
    if isinstance(before, Container) and isinstance(after, Container) and before.name != after.name:
        target = f"{before.name} => {after.name}"
    else:
        target = change.name
    if change.kind == "dns" and change.zone:
        target = f"{target} in {change.zone}"
    extra = f"  [{detail}]" if detail else ""
    lines = [f"  {symbol:>3} {change.kind} {target}{extra}", f"        # {change.reason}"]
    lines.extend(f"        {part.describe()}" for part in change.parts)
    return "\n".join(lines)


def render_text(plan: Plan) -> str:
    lines: list[str] = []
    blocked_tenants = {b.tenant for b in plan.blocked}
    for tenant in sorted(set(plan.tenants()) | blocked_tenants):
        lines.append(f"site {tenant.removeprefix(SITE_KEY)}:" if tenant.startswith(SITE_KEY) else f"tenant {tenant}:")
        sub = plan.for_tenant(tenant)
        lines.extend(_line(change) for change in sub.changes)
        for refusal in sub.refused:
            # A policy's pass-wide error is printed once at the end, not on every refused line.
            why = "" if refusal.reason in plan.errors else f": {refusal.reason}"
            lines.append(f"  !   {refusal.change.describe()} REFUSED by {refusal.policy}{why}")
        for block in sub.blocked:
            lines.append(f"  !   {block.kind} blocked ({block.reason}): {block.message}")
    counts = plan.counts()
    lines.append(
        f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['replace']} to replace, "
        f"{counts['delete']} to delete, {len(plan.refused)} refused."
    )
    lines.extend(f"Error: {error}" for error in plan.errors)
    return "\n".join(lines)


def _resource_json(resource: Resource | None, show_values: bool) -> dict[str, Any] | None:
    if resource is None:
        return None
    if isinstance(resource, RouteFile):
        data: dict[str, Any] = {"tenant": resource.tenant, "name": resource.name, "owner": resource.owner}
        data["routers"] = [asdict(r) for r in resource.table.routers]
        data["services"] = [asdict(s) for s in resource.table.services]
        data["middlewares"] = [asdict(m) for m in resource.table.middlewares]
        return data
    data = asdict(resource)
    if isinstance(resource, Container | Service) and resource.env is not None:
        data["env"] = (
            dict(resource.env)
            if show_values
            else {"keys": sorted(k for k, _ in resource.env), "digest": env_digest(resource.env)}
        )
    return {k: v for k, v in data.items() if v not in (None, (), "", [])}


def change_json(change: Change, show_values: bool = False) -> dict[str, Any]:
    return {
        "action": change.action.value,
        "operation": change.operation,
        "kind": change.kind,
        "tenant": change.tenant,
        "name": change.name,
        "zone": change.zone or None,
        "reason": change.reason,
        "parts": [{"action": p.action.value, "kind": p.kind, "name": p.name, "detail": p.detail} for p in change.parts],
        "before": _resource_json(change.before, show_values),
        "after": _resource_json(change.after, show_values),
    }


def render_json(plan: Plan, *, show_values: bool = False) -> str:
    return json.dumps(
        {
            "changes": [change_json(c, show_values) for c in plan.changes],
            "refused": [
                {"change": change_json(r.change, show_values), "policy": r.policy, "reason": r.reason}
                for r in plan.refused
            ],
            "blocked": [
                {"tenant": b.tenant, "kind": b.kind, "reason": b.reason, "message": b.message} for b in plan.blocked
            ],
            "errors": list(plan.errors),
            "summary": plan.counts(),
        },
        indent=2,
        sort_keys=True,
        default=str,
    )

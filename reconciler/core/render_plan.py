"""Plan rendering for people (``reconciler plan``, terraform style) and machines (``--json``). Pure."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from reconciler.core.plan import Change, Plan
from reconciler.core.resources import Container, Network, Volume

_MIB = 1024 * 1024


def _summary(resource: Container | Network | Volume | None) -> str:
    if isinstance(resource, Container):
        parts = [resource.image]
        if resource.memory is not None:
            parts.append(f"mem={resource.memory // _MIB}M")
        if resource.cpus is not None:
            parts.append(f"cpus={resource.cpus:g}")
        return " ".join(parts)
    if isinstance(resource, Network):
        return f"subnet={resource.subnet}" if resource.subnet else ""
    return ""


def _line(change: Change) -> str:
    symbol = change.action.value
    detail = _summary(change.after or change.before)
    if change.operation in ("start", "stop"):
        detail = change.operation
    if change.before is not None and change.after is not None and change.before.name != change.after.name:
        target = f"{change.before.name} => {change.after.name}"
    else:
        target = change.name
    extra = f"  [{detail}]" if detail else ""
    return f"  {symbol:>3} {change.kind} {target}{extra}\n        # {change.reason}"


def render_text(plan: Plan) -> str:
    lines: list[str] = []
    for tenant in plan.tenants():
        lines.append(f"tenant {tenant}:")
        sub = plan.for_tenant(tenant)
        lines.extend(_line(change) for change in sub.changes)
        for refusal in sub.refused:
            # A policy's pass-wide error is printed once at the end, not on every refused line.
            why = "" if refusal.reason in plan.errors else f": {refusal.reason}"
            lines.append(f"  !   {refusal.change.describe()} REFUSED by {refusal.policy}{why}")
    counts = plan.counts()
    lines.append(
        f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['replace']} to replace, "
        f"{counts['delete']} to delete, {len(plan.refused)} refused."
    )
    lines.extend(f"Error: {error}" for error in plan.errors)
    return "\n".join(lines)


def _resource_json(resource: Container | Network | Volume | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    data = asdict(resource)
    return {k: v for k, v in data.items() if v not in (None, (), "")}


def change_json(change: Change) -> dict[str, Any]:
    return {
        "action": change.action.value,
        "operation": change.operation,
        "kind": change.kind,
        "tenant": change.tenant,
        "name": change.name,
        "reason": change.reason,
        "before": _resource_json(change.before),
        "after": _resource_json(change.after),
    }


def render_json(plan: Plan) -> str:
    return json.dumps(
        {
            "changes": [change_json(c) for c in plan.changes],
            "refused": [
                {"change": change_json(r.change), "policy": r.policy, "reason": r.reason} for r in plan.refused
            ],
            "errors": list(plan.errors),
            "summary": plan.counts(),
        },
        indent=2,
        sort_keys=True,
    )

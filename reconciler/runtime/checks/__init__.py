"""Checks (smoke tests) of tenant services through their real route, after every rollout and on a schedule.

``probe`` sends one check's request to Traefik's web entrypoint with the route's host; ``runner`` judges the answer
(``core.checks.evaluate``), records it (``tenant_checks``), counts it, keeps the tenant's ``ChecksPassing`` condition
and alerts once when a check starts failing; ``schedule`` runs every check of every running tenant on an interval.
The executor calls the runner after a pass routed new containers (``passes.check_step``); a failing check after an
upgrade is handed to the upgrade gate, which pins the service to the old version that still runs. Built by
``runtime.wiring`` when ``RECONCILER_CHECK_URL`` is set. docs/operations.md "Checks" is the operator's guide.
"""

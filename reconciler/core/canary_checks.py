"""The canary's own checks in its verdict (pure): a failing check on the canary version is a back-out.

The analysis job (``runtime.operations.canary``) runs the service's checks (``core.checks``) against the canary
version alone each window (``runtime.operations.canary_checks``: the version header the routes renderer adds,
``renderers.traefik_versions``) and asks ``with_checks`` what the window's verdict becomes. A check that
fails on the canary backs it out like an error-rate breach, its result in the reason (status, history, alert);
passing checks never promote on their own: the metrics must say healthy too, so a window without enough canary
requests stays inconclusive whatever the checks say.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.core.canary import Verdict
from reconciler.core.checks import CheckResult, failing


def with_checks(verdict: Verdict, results: Sequence[CheckResult]) -> Verdict:
    """The window's verdict once the canary's own check results are known (none run: unchanged)."""
    if not results or verdict.outcome == "failing":
        return verdict
    bad = failing(results)
    if bad:
        shown = "; ".join(f"check {r.describe()}" for r in bad[:2])
        more = f" (and {len(bad) - 2} more)" if len(bad) > 2 else ""
        figures = f"; {verdict.figures.describe()}" if verdict.figures is not None else ""
        return Verdict("failing", f"{shown}{more}{figures}", verdict.figures)
    passed = f"{len(results)} check{'s' if len(results) > 1 else ''} passed on the canary"
    return Verdict(verdict.outcome, f"{verdict.reason}; {passed}", verdict.figures)

"""The canary-analysis tables: thresholds the UI writes (``canary_policies``) and the analysis's state per tenant
service (``tenant_canaries``, written by the reconciler only).

Beside ``desired_state.tables`` (which imports this module at its end, so ``Base.metadata`` always holds these
tables) only to keep that module small. Read and written by ``desired_state.canaries``; created by migration 0011
(the quantile latency columns by 0017).
docs/schema.md ("Canary analysis") describes every column and its bounds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from desired_state.tables import Base, BigIntId, TimestampsMixin, UtcDateTime


class CanaryPolicy(TimestampsMixin, Base):
    """Thresholds and promotion steps of the canary analysis for one catalog service (``tenant`` NULL) or one
    tenant's use of it; NULL columns inherit (tenant row → catalog row → settings)."""

    __tablename__ = "canary_policies"
    __table_args__ = (UniqueConstraint("service", "tenant", name="canary_policies_service_tenant_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255))
    # Share of 5xx answers above which the canary is backed out (0..1).
    max_error_rate: Mapped[float | None] = mapped_column(Float)
    # Mean request duration above which the canary is backed out, in milliseconds.
    max_latency_ms: Mapped[int | None] = mapped_column(Integer)
    # A window with fewer canary requests judges nothing.
    min_requests: Mapped[int | None] = mapped_column(Integer)
    # Absolute limit on the canary's request duration at ``latency_quantile`` (ms), from Traefik's histogram
    # (migration 0017); NULL: no such limit (the mean alone).
    max_quantile_latency_ms: Mapped[int | None] = mapped_column(Integer)
    # The quantile ``max_quantile_latency_ms`` applies to, 0.5..0.999 (0.95: p95); NULL: inherit, then 0.99.
    latency_quantile: Mapped[float | None] = mapped_column(Float)
    # JSON list of rising canary percentages ending at 100, e.g. [10, 25, 50, 100]; [] or NULL: no promotion.
    steps: Mapped[Any | None] = mapped_column(JSON)
    # False: no analysis for this service (or tenant service); the database's weights hold.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class TenantCanaryRow(TimestampsMixin, Base):
    """The analysis of one tenant service's second version: state, imposed weight, last window's figures."""

    __tablename__ = "tenant_canaries"
    __table_args__ = (UniqueConstraint("tenant", "service", name="tenant_canaries_tenant_service_unique"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(255))
    stable_image: Mapped[str] = mapped_column(String(255))
    canary_image: Mapped[str] = mapped_column(String(255))
    # analysing | promoting | promoted | backed-out
    state: Mapped[str] = mapped_column(String(32))
    # The canary's share in percent the analysis imposes; NULL: the database's weights hold.
    weight: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    reason: Mapped[str | None] = mapped_column(Text)
    # The last judged window of the canary's Traefik service.
    requests: Mapped[int | None] = mapped_column(Integer)
    errors: Mapped[int | None] = mapped_column(Integer)
    error_rate: Mapped[float | None] = mapped_column(Float)
    mean_latency_ms: Mapped[float | None] = mapped_column(Float)
    # The window's duration at the policy's quantile, when the policy limits one (migration 0017).
    latency_quantile: Mapped[float | None] = mapped_column(Float)
    quantile_latency_ms: Mapped[float | None] = mapped_column(Float)
    window_seconds: Mapped[float | None] = mapped_column(Float)
    analysed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

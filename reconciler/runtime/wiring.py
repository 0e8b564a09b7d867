"""Build the runtime from settings: storage engine, drivers, optional routing and DNS stages, reconciler.

The only place that knows which stages exist; called by the CLI. Nothing here runs at import time.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from desired_state.alert_log import record_alert, record_delivery
from desired_state.database import make_engine
from reconciler.core.diff import SubnetPool
from reconciler.core.policies import MassDeleteLimits
from reconciler.core.resources import ContainerDefaults, HealthCheck
from reconciler.drivers.docker import DockerDriver, DockerTimeouts, InspectionMarks
from reconciler.drivers.nginx import NginxDriver
from reconciler.runtime.checks.runner import CheckMetrics, CheckRunner
from reconciler.runtime.checks.schedule import JOB_ID as CHECKS_JOB
from reconciler.runtime.checks.schedule import ScheduledChecks
from reconciler.runtime.data_node import DataNodeDocker
from reconciler.runtime.engine_choice import build_engine, node_hosts, swarm_settings
from reconciler.runtime.operations.common import Alert, OperationsMetrics
from reconciler.runtime.operations.request_pool import RequestPool
from reconciler.runtime.operations.tenant_ops import TenantOps, build_operation_parts
from reconciler.runtime.passes.deadline import PassDeadline
from reconciler.runtime.passes.reconcile import Reconciler
from reconciler.runtime.passes.sites_step import NoSites, SiteMetrics, SitesStep
from reconciler.runtime.passes.stages import DnsPublisher, Router
from reconciler.runtime.passes.wordpress_step import WordpressStep
from reconciler.runtime.service.scheduler import Scheduler
from reconciler.runtime.settings import Settings
from reconciler.runtime.telemetry.alerts import Alerter, build_alerter
from reconciler.runtime.telemetry.metrics import Metrics
from renderers.containers import Naming
from renderers.dns import DnsTarget
from renderers.nginx import NginxLayout


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    docker: DockerDriver
    reconciler: Reconciler
    metrics: Metrics
    # Periodic jobs, run only while this instance leads (``reconciler run``); register jobs at wiring time.
    scheduler: Scheduler = field(default_factory=Scheduler)
    alerts: Alerter = field(default_factory=Alerter)
    # Backups, restores, rollbacks; its upgrade gate is the reconciler's ``operations`` (docs/operations-backups.md).
    operations: TenantOps | None = None
    # Operation requests from the UI, polled by ``scheduler`` while this instance leads (``operations.request_pool``).
    requests: RequestPool | None = None
    # Checks after rollouts and on a schedule (``runtime.checks``); None without ``RECONCILER_CHECK_URL``.
    checks: ScheduledChecks | None = None


def build_router(settings: Settings, naming: Naming) -> Router | None:
    if not settings.traefik_dynamic_dir:
        return None
    from reconciler.runtime.passes.routing import build_traefik_router

    return build_traefik_router(settings, naming)


def build_dns(settings: Settings, naming: Naming) -> DnsPublisher | None:
    if not settings.powerdns_url:
        return None
    from reconciler.runtime.passes.dns import build_powerdns_publisher

    return build_powerdns_publisher(settings, naming)


def build_sites(
    settings: Settings,
    engine: Engine,
    naming: Naming,
    metrics: Metrics,
    dns: DnsPublisher | None = None,
    docker: DockerDriver | None = None,
) -> SitesStep | None:
    if not settings.nginx_state_dir:
        return None
    layout = NginxLayout(
        listen=settings.nginx_listen,
        prefix=naming.prefix,
        owner=naming.owner,
        state_dir=settings.nginx_state_dir.rstrip("/"),
        static_root=settings.nginx_static_root.rstrip("/"),
        user=settings.nginx_user,
    )
    driver = NginxDriver(
        Path(layout.state_dir), naming.prefix, settings.nginx_binary, reload_timeout=settings.nginx_reload_timeout
    )
    limits = MassDeleteLimits(settings.mass_delete_share, settings.mass_delete_min, settings.mass_delete_window)
    public = site_dns_target(settings) if dns is not None else None
    wordpress = WordpressStep(engine, docker, naming.prefix, naming.owner) if docker is not None else None
    return SitesStep(engine, driver, layout, limits, SiteMetrics(metrics), public=public, dns=dns, wordpress=wordpress)


def site_dns_target(settings: Settings) -> DnsTarget:
    """Where site hosts point: ``nginx_public_address``, else the address Nginx listens on (docs/dns.md "Sites")."""
    address = settings.nginx_public_address
    if address is None:
        host = settings.nginx_listen.rpartition(":")[0].strip("[]")
        if host == "*":
            raise ValueError(
                f"nginx_listen = {settings.nginx_listen!r} names no address for the sites' DNS records; "
                "set RECONCILER_NGINX_PUBLIC_ADDRESS to the address clients reach Nginx at, such as 192.0.2.10"
            )
        address = host
    try:
        version = ipaddress.ip_address(address.strip()).version
    except ValueError:
        raise ValueError(
            f"nginx_public_address = {address[:60]!r} is not an IPv4 or IPv6 address such as 192.0.2.10 or 2001:db8::10"
        ) from None
    address = address.strip()
    return DnsTarget(
        a=(address,) if version == 4 else (), aaaa=(address,) if version == 6 else (), ttl=settings.dns_ttl
    )


def build_runtime(
    settings: Settings, *, with_stages: bool = True, stop: threading.Event | None = None, schedule: bool = True
) -> Runtime:
    """``stop``: what passes check between actions (default: a ``PassDeadline`` of its own, which the service's loop
    uses for per-worker deadlines). ``schedule=False`` (one-shot commands: nothing starts the scheduler) registers
    no periodic job and no request pool, so APScheduler is never imported."""
    engine = make_engine(settings.database_url)
    naming = Naming(prefix=settings.name_prefix, owner=settings.owner_id)
    docker = build_docker(settings, engine)
    metrics = Metrics()
    scheduler = Scheduler()
    token = settings.telegram_token.get_secret_value() if settings.telegram_token else None
    alerts = build_alerter(
        token,
        settings.telegram_chat_id,
        settings.telegram_base_url,
        per_minute=settings.alert_rate_per_minute,
        metrics=metrics,
        # Every alert is kept in alert_events for the HTTP API's "alerts sent" (reconciler.api).
        record=partial(record_alert, engine),
        # ... and what the Telegram sender made of it (sent, or failed with the error).
        delivered=partial(record_delivery, engine),
    )
    ops_metrics = OperationsMetrics(metrics.registry)
    parts = build_operation_parts(settings, engine, docker, naming, ops_metrics, notify=alerts.notify)
    dns = build_dns(settings, naming) if with_stages else None
    runner = build_check_runner(settings, engine, metrics, parts.relay) if with_stages else None
    reconciler = Reconciler(
        engine=engine,
        docker=build_engine(settings, docker),
        swarm=swarm_settings(settings),
        naming=naming,
        pool=SubnetPool(settings.subnet_pool, settings.subnet_prefix),
        limits=MassDeleteLimits(settings.mass_delete_share, settings.mass_delete_min, settings.mass_delete_window),
        router=build_router(settings, naming) if with_stages else None,
        dns=dns,
        metrics=metrics,
        ready_timeout=settings.ready_timeout,
        stop=stop if stop is not None else PassDeadline(),
        healthcheck=build_healthcheck(settings),
        container_defaults=build_container_defaults(settings),
        operations=parts.guard,
        base_domain=settings.base_domain,
        entrypoint=settings.traefik_entrypoint,
        input_limits=settings.input_limits(),
        apply_workers=settings.apply_workers,
        apply_concurrency=settings.apply_concurrency,
        sites=(build_sites(settings, engine, naming, metrics, dns, docker) if with_stages else None) or NoSites(),
        checks=runner,
    )
    checks = ScheduledChecks(runner, reconciler) if runner is not None else None
    if checks is not None and schedule and settings.check_interval > 0:
        scheduler.add_interval(CHECKS_JOB, settings.check_interval, checks.tick, jitter=settings.check_interval / 10)
    operations = parts.tenant_ops(engine, docker, naming, ops_metrics, reconciler)
    requests = _register_jobs(settings, engine, docker, naming, operations, scheduler) if schedule else None
    if schedule:
        _register_canary_analysis(settings, engine, reconciler, alerts, scheduler)
    return Runtime(
        settings=settings,
        engine=engine,
        docker=docker,
        reconciler=reconciler,
        metrics=metrics,
        scheduler=scheduler,
        alerts=alerts,
        operations=operations,
        requests=requests,
        checks=checks,
    )


def _register_jobs(
    settings: Settings,
    engine: Engine,
    docker: DockerDriver,
    naming: Naming,
    operations: TenantOps,
    scheduler: Scheduler,
) -> RequestPool:
    """The periodic jobs of ``reconciler run``: scheduled backups, site backups, the operation-request poll."""
    from reconciler.runtime.operations.backup_schedule import BackupSchedule
    from reconciler.runtime.operations.requests import register_request_pool
    from reconciler.runtime.operations.site_backups import SiteBackups, register_site_backups

    BackupSchedule(operations, scheduler).register()
    if settings.site_backup_schedule and settings.backup_dir:
        site_backups = SiteBackups(docker, Path(settings.backup_dir), naming.prefix, naming.owner)
        register_site_backups(scheduler, engine, site_backups, settings.site_backup_schedule, settings.site_backup_keep)
    return register_request_pool(operations, scheduler)


def _register_canary_analysis(
    settings: Settings, engine: Engine, reconciler: Reconciler, alerts: Alerter, scheduler: Scheduler
) -> None:
    """The canary analysis job (docs/operations.md "Canary analysis"): with routing and a window only."""
    if not settings.canary_window or not settings.traefik_dynamic_dir or not settings.traefik_api_url:
        return
    from desired_state.canaries import CanaryPolicyResolved
    from reconciler.core.canary import Thresholds
    from reconciler.drivers.traefik_metrics import PrometheusCountersReader, TraefikMetricsReader
    from reconciler.runtime.operations.canary import CanaryAnalysis, CanaryMetrics
    from reconciler.runtime.settings import canary_step_list

    defaults = CanaryPolicyResolved(
        Thresholds(settings.canary_max_error_rate, settings.canary_max_latency, settings.canary_min_requests),
        canary_step_list(settings.canary_steps),
        enabled=True,
    )
    reader: PrometheusCountersReader | TraefikMetricsReader
    if settings.canary_metrics == "prometheus":
        if not settings.prometheus_url:
            raise ValueError(
                "canary_metrics = 'prometheus' needs RECONCILER_PROMETHEUS_URL (a Prometheus scraping Traefik)"
            )
        reader = PrometheusCountersReader(settings.prometheus_url)
    else:
        reader = TraefikMetricsReader(settings.traefik_metrics_url or f"{settings.traefik_api_url.rstrip('/')}/metrics")
    metrics = CanaryMetrics(reconciler.metrics.registry) if reconciler.metrics is not None else None
    analysis = CanaryAnalysis(engine, reader, reconciler, defaults, alerts.tenant, metrics=metrics)
    if settings.check_url:  # the canary's own checks, through the version header (docs/operations.md)
        from reconciler.runtime.operations.canary_checks import CanaryChecker

        analysis.checks = CanaryChecker(settings.check_url)
    scheduler.add_interval("canary-analysis", settings.canary_window, analysis.run_once)


def build_check_runner(settings: Settings, engine: Engine, metrics: Metrics, alert: Alert) -> CheckRunner | None:
    """The check runner when ``RECONCILER_CHECK_URL`` names Traefik's web entrypoint (checks need the routing stage)."""
    if not settings.check_url or not settings.traefik_dynamic_dir:
        return None
    return CheckRunner(
        engine,
        settings.check_url,
        rollback=settings.check_rollback,
        alert=alert,
        metrics=CheckMetrics(metrics.registry),
        keep=settings.check_keep,
        max_age=timedelta(days=settings.check_max_age_days),
    )


def build_healthcheck(settings: Settings) -> HealthCheck | None:
    if not settings.healthcheck_command:
        return None
    return HealthCheck(
        command=settings.healthcheck_command,
        interval=settings.healthcheck_interval,
        timeout=settings.healthcheck_timeout,
        retries=settings.healthcheck_retries,
        start_period=settings.healthcheck_start_period,
    )


def build_docker(settings: Settings, database: Engine | None = None) -> DockerDriver:
    """The Docker driver of operations, events and helpers; on a swarm with node engines given (and ``database``),
    one that runs a tenant's helpers on its data node (``runtime.data_node``)."""
    timeouts = DockerTimeouts(
        api=settings.docker_api_timeout,
        mutation=settings.docker_mutation_timeout,
        pull=settings.docker_pull_timeout,
        events_read=settings.docker_events_read_timeout,
    )
    options: dict[str, Any] = {
        "owner": settings.owner_id,
        "timeouts": timeouts,
        "pull": settings.image_pull,
        "inspections": InspectionMarks(settings.inspect_per_resync),
    }
    hosts = node_hosts(settings.swarm_node_hosts) if settings.engine == "swarm" else {}
    if hosts and database is not None:
        nodes = {name: DockerDriver(docker_host=url, **options) for name, url in hosts.items()}
        return DataNodeDocker(database, nodes, docker_host=settings.docker_host, **options)
    return DockerDriver(docker_host=settings.docker_host, **options)


def build_container_defaults(settings: Settings) -> ContainerDefaults:
    return ContainerDefaults(
        pids_limit=settings.container_pids_limit or None,
        log_max_size=settings.container_log_max_size or None,
        log_max_file=settings.container_log_max_file,
        no_new_privileges=settings.container_no_new_privileges,
    )

"""Typed settings groups, read from the environment (``RECONCILER_*``) when ``main`` builds them, never at
import time. Secrets that are still placeholders are rejected."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from desired_state.bounds import MAX_ALLOWED_RANGES, MAX_CPUS, InputLimits
from desired_state.sizes import parse_memory
from reconciler.core.canary_steps import check_steps

_PLACEHOLDERS = {"changeme", "change-me", "secret", "xxx", "todo", "placeholder"}


def _reject_placeholder(value: SecretStr | None, what: str) -> SecretStr | None:
    if value is not None and value.get_secret_value().strip().lower() in _PLACEHOLDERS:
        raise ValueError(f"{what} is a placeholder; set a real value")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECONCILER_", extra="ignore")

    # Storage: no URL → a SQLite file in the working directory.
    database_url: str | None = None

    # Ownership and naming: several reconcilers (or test runs) may share one engine with distinct owner ids.
    owner_id: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    name_prefix: str = Field(default="erp", pattern=r"^[a-z][a-z0-9]{0,9}$")
    docker_host: str | None = None

    # Tenant networks get explicit subnets from this pool (stock pools stop at ~30 networks).
    subnet_pool: str = "10.213.0.0/16"
    subnet_prefix: int = Field(default=26, ge=16, le=29)

    # Loop.
    resync_interval: float = Field(default=30.0, gt=0)
    resync_jitter: float = Field(default=0.1, ge=0, le=0.5)
    ready_timeout: float = Field(default=60.0, gt=0)
    workers: int = Field(default=4, ge=1, le=32)
    # One pass applies this many tenants side by side (``reconciler apply``, the shared resync passes of ``run``),
    # and the process keeps at most apply_concurrency engine actions in flight (docs/runtime.md).
    apply_workers: int = Field(default=4, ge=1, le=32)
    apply_concurrency: int = Field(default=6, ge=1, le=64)
    reconcile_timeout: float = Field(default=300.0, gt=0)
    backoff_initial: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=300.0, gt=0)

    # Mass-delete guard.
    mass_delete_share: float = Field(default=0.5, gt=0, le=1)
    mass_delete_min: int = Field(default=3, ge=0)
    # Under ``reconciler run``, removals within this many seconds count together against the share.
    mass_delete_window: float = Field(default=600.0, ge=0)
    # The documented override for ``reconciler run`` (like its --allow-mass-delete): let it remove many at once.
    allow_mass_delete: bool = False

    # Metrics and health endpoints.
    metrics_addr: str = "127.0.0.1:9108"

    # Per-tenant resource usage (docs/observability.md): seconds between collections, 0 → not collected.
    usage_interval: float = Field(default=15.0, ge=0)
    # cgroup: the engine's cgroup files (~0.1 ms per container); docker-api: the stats API (~1 s per container,
    # in parallel); auto: cgroup files when readable, else the API.
    usage_source: str = Field(default="auto", pattern=r"^(auto|cgroup|docker-api)$")
    cgroup_root: str = "/sys/fs/cgroup"  # the host's, mounted read-only when the reconciler runs in a container
    # Prometheus query API. When set, the tenant_usages table gets figures averaged over usage_window there.
    prometheus_url: str | None = None
    usage_window: float = Field(default=300.0, gt=0)

    # HTTP API and console (``reconciler serve``, docs/api.md): where it listens (loopback unless told otherwise),
    # and the key that signs console sessions (unset: a random key per process, so sessions end on restart).
    api_listen: str = Field(default="127.0.0.1:8090", pattern=r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
    api_session_secret: SecretStr | None = None
    # Loki's HTTP API (the deploy bundle's, fed by Promtail): the API reads tenants' logs there instead of the engine.
    loki_url: str | None = None

    # Traefik (file provider + API). Unset dynamic dir → no routing stage.
    traefik_dynamic_dir: str | None = None
    traefik_api_url: str | None = None
    traefik_entrypoint: str = "web"
    base_domain: str | None = None  # hosts must sit under it when set

    # Canary analysis of two-version services (docs/operations.md "Canary analysis"): seconds per window (0: off),
    # and the defaults of the thresholds and promotion steps that ``canary_policies`` rows override.
    canary_window: float = Field(default=30.0, ge=0)
    canary_max_error_rate: float = Field(default=0.05, ge=0, le=1)
    canary_max_latency: float = Field(default=1.0, gt=0, le=600)  # seconds, mean request duration
    canary_min_requests: int = Field(default=20, ge=1, le=1_000_000)
    canary_steps: str = ""  # comma-separated canary percentages ending at 100, e.g. "10,25,50,100"; empty: none
    # Where the counters come from: Traefik's own endpoint (traefik_metrics_url, unset: <traefik_api_url>/metrics),
    # or a Prometheus that scrapes Traefik (prometheus_url).
    canary_metrics: str = Field(default="traefik", pattern=r"^(traefik|prometheus)$")
    traefik_metrics_url: str | None = None

    # Bounds on what one tenant service may ask for (docs/schema.md "Bounds"). Unset memory / CPUs: the host's.
    max_service_memory: str | None = None  # a size such as 16G
    max_service_cpus: float | None = Field(default=None, gt=0, le=MAX_CPUS)
    # Ranges an allow list and its deny list may compile to (Traefik has only an allow list).
    max_allowed_ranges: int = Field(default=MAX_ALLOWED_RANGES, ge=1, le=100_000)

    # PowerDNS. Unset URL → no DNS stage.
    powerdns_url: str | None = None
    powerdns_api_key: SecretStr | None = None
    powerdns_server_id: str = "localhost"
    powerdns_zones: list[str] = Field(default_factory=list)
    powerdns_create_zones: bool = True
    powerdns_policy: str = Field(default="sync", pattern=r"^(sync|upsert-only)$")
    dns_target_a: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    dns_target_aaaa: list[str] = Field(default_factory=list)
    dns_target_cname: str | None = None
    dns_ttl: int = Field(default=60, ge=1)

    # Nginx sites (docs/sites.md). Unset state dir → no sites stage. Nginx runs with its own prefix there.
    nginx_state_dir: str | None = None
    nginx_listen: str = Field(default="127.0.0.1:8090", pattern=r"^(\[[0-9a-fA-F:]+\]|[0-9.]+|\*):[0-9]{1,5}$")
    nginx_binary: str = "nginx"
    # Static sites serve <static root>/<volume>; the workers' user must be able to read it.
    nginx_static_root: str = "/srv/sites"
    nginx_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    nginx_reload_timeout: float = Field(default=10.0, gt=0)
    # Where site hosts point in DNS (A for IPv4, AAAA for IPv6) when PowerDNS is set too; unset: the listen address.
    nginx_public_address: str | None = None

    # RabbitMQ nudges. Unset URL → periodic resync and Docker events only. See docs/messages.md.
    rabbitmq_url: str | None = None
    rabbitmq_exchange: str = "tenant-reconciler"
    rabbitmq_queue: str = "tenant-reconciler.nudges"

    # Telegram alerts. Unset token → alerts are only logged. Base URL as python-telegram-bot takes it
    # (default https://api.telegram.org/bot; the token is appended).
    telegram_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_base_url: str | None = None
    # At most this many alert messages per minute; the rest are logged and dropped.
    alert_rate_per_minute: int = Field(default=20, ge=1)

    # Crash loops: a replica that dies this many times within the window is crash-looping; the reconciler
    # then leaves it alone for the backoff (doubling after each failed attempt, up to the max).
    crashloop_deaths: int = Field(default=3, ge=2)
    crashloop_window: float = Field(default=120.0, gt=0)
    crashloop_backoff_initial: float = Field(default=30.0, gt=0)
    crashloop_backoff_max: float = Field(default=600.0, gt=0)

    # Docker health check for every tenant container, run with the container's shell; {port} and {health}
    # are replaced by the service's port and health path. Unset → none (the image's own HEALTHCHECK, if any).
    # The demo sets "wget -q -O- http://127.0.0.1:{port}{health}" (the demo image has busybox wget).
    healthcheck_command: str | None = None
    healthcheck_interval: float = Field(default=10.0, ge=1)
    healthcheck_timeout: float = Field(default=3.0, ge=1)
    healthcheck_retries: int = Field(default=3, ge=1)
    healthcheck_start_period: float = Field(default=10.0, ge=0)

    # Tenant operations (docs/operations-backups.md). Unset backup dir → no backups (upgrades go ahead without one).
    backup_dir: str | None = None
    # A backup is refused while the backup dir's file system has less free space than this.
    backup_min_free_mib: int = Field(default=1024, ge=0)
    # Image of the helper containers that archive and restore data volumes: needs sh, tar and gzip.
    backup_helper_image: str = "erp/busybox:local"
    backup_timeout: float = Field(default=3600.0, gt=0)
    backup_policy_refresh: float = Field(default=30.0, gt=0)  # seconds between re-reads of backup_policies
    # Bounds of a tenant's backup policy: the shortest time between two scheduled backups (seconds; a schedule
    # firing more often is that tenant's error) and the most archives retention may keep.
    backup_min_interval: float = Field(default=300.0, gt=0)
    backup_keep_max: int = Field(default=1000, ge=1)
    # Cron (UTC) of the restore test of each tenant's newest backup into a scratch volume. Unset → never.
    backup_verify_schedule: str | None = None
    # Cron (UTC) of the backup of every WordPress site (docs/sites.md); unset → on request only. Newest kept per site.
    site_backup_schedule: str | None = None
    site_backup_keep: int = Field(default=7, ge=1)
    migrate_timeout: float = Field(default=600.0, gt=0)
    operation_poll_interval: float = Field(default=5.0, gt=0)  # seconds between reads of operation_requests
    # Operation requests of different tenants carried out at once (docs/operations-backups.md, "Requests"): 2 fits
    # a 2-core host (a backup is gzip on one core); never two of one tenant. A shutdown waits this many seconds for
    # the running ones, then leaves them to the next leader's recovery.
    operation_concurrency: int = Field(default=2, ge=1, le=64)
    operation_shutdown_grace: float = Field(default=20.0, ge=0)
    operation_hold_timeout: float = Field(default=3600.0, gt=0)  # a restore running longer is taken as abandoned

    # Docker calls (docs/runtime.md, "Bounded waits"): seconds one API request, one CLI mutation and one image
    # pull may take, and after which a silent event stream is reopened (from its last event, losing none).
    docker_api_timeout: float = Field(default=60.0, gt=0)
    docker_mutation_timeout: float = Field(default=120.0, gt=0)
    docker_pull_timeout: float = Field(default=600.0, gt=0)
    docker_events_read_timeout: float = Field(default=60.0, gt=0)
    # missing: pull an image the engine lacks; never: a missing image is a permanent error (no registry access).
    image_pull: str = Field(default="missing", pattern=r"^(missing|never)$")
    # Drift the labels cannot show (docker update, docs/runtime.md): containers inspected per resync, in turn.
    inspect_per_resync: int = Field(default=10, ge=0)

    # Defaults for every tenant container, part of its spec hash (changing one replaces every container once).
    # 0 / "" → not set (no pids limit; the engine's log options).
    container_pids_limit: int = Field(default=512, ge=0)
    container_log_max_size: str = Field(default="10m", pattern=r"^(|[1-9][0-9]*[kmg])$")
    container_log_max_file: int = Field(default=3, ge=1)
    container_no_new_privileges: bool = True

    # Checks (smoke tests, docs/operations.md "Checks"): the plain-HTTP address of the Traefik entrypoint the routers
    # are on (RECONCILER_TRAEFIK_ENTRYPOINT), as clients reach it (unset: no checks run); seconds between scheduled
    # runs (0: only after rollouts); whether a failing check after an upgrade rolls it back where the catalog entry
    # does not say; the rows kept per check and their longest age in days.
    check_url: str | None = Field(default=None, pattern=r"^http://[^/?#\s]+/?$")
    check_interval: float = Field(default=300.0, ge=0)
    check_rollback: bool = True
    check_keep: int = Field(default=200, ge=1, le=100_000)
    check_max_age_days: float = Field(default=14.0, gt=0, le=3650)
    # The engine tenants run on (docs/swarm.md): "docker", one engine and one container per replica; "swarm", a
    # Docker Swarm manager at docker_host running one replicated service per tenant service, data placed on nodes.
    engine: str = Field(default="docker", pattern=r"^(docker|swarm)$")
    # Swarm: the registry every node pulls tenant images from (prefixed to images that name none), e.g.
    # registry.example:5000; services (by name, comma-separated) that keep no data and may spread over nodes;
    # each node's own engine ("n1=tcp://10.0.0.11:2376,n2=..."), where data volumes are listed and created.
    swarm_registry: str | None = None
    swarm_stateless: str = ""
    swarm_node_hosts: str = ""
    # Swarm: how a replaced task is stopped (signal, then SIGKILL after the grace); routing drops it meanwhile.
    swarm_stop_signal: str = Field(default="SIGTERM", pattern=r"^SIG[A-Z0-9]{2,8}$")
    swarm_stop_grace: float = Field(default=10.0, ge=0, le=600)
    # Swarm: the router's (Traefik's) container on the manager, joined to each tenant overlay when it is created.
    swarm_router_container: str | None = None
    # Swarm: how often `reconciler run` lists tasks for deaths (crash loops, nudges); a manager streams no task events.
    swarm_task_poll: float = Field(default=2.0, gt=0, le=300)

    # Logs.
    log_json: bool = False
    log_level: str = "INFO"

    @field_validator("max_service_memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_memory(value)
        return value

    @field_validator("canary_steps")
    @classmethod
    def _canary_steps(cls, value: str) -> str:
        canary_step_list(value)
        return value

    def input_limits(self) -> InputLimits:
        """The loader's bounds: these settings, the host's memory and CPUs where unset."""
        memory = parse_memory(self.max_service_memory) if self.max_service_memory else None
        return InputLimits.for_host(memory, self.max_service_cpus, self.max_allowed_ranges)

    @field_validator("backup_verify_schedule", "site_backup_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value:
            from reconciler.core.schedule import ScheduleError, parse_schedule

            try:
                parse_schedule(value)
            except ScheduleError as exc:
                raise ValueError(f"not a crontab expression such as '30 4 * * *': {exc}") from exc
        return value

    @field_validator("powerdns_api_key", "telegram_token", "api_session_secret")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return _reject_placeholder(value, "secret")

    @field_validator("database_url", "rabbitmq_url")
    @classmethod
    def _no_placeholder_password(cls, value: str | None) -> str | None:
        # deploy/.env.example fills these URLs' passwords with placeholders; never start with one.
        if value:
            _reject_placeholder(SecretStr(urlsplit(value).password or ""), "the password in this URL")
        return value


def canary_step_list(text: str) -> tuple[int, ...]:
    """``RECONCILER_CANARY_STEPS`` as percentages: ``10,25,50,100`` (rising, ending at 100); empty: none."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return check_steps([int(p) for p in parts])
    except ValueError:
        raise ValueError(
            f"canary_steps = {text[:60]!r}: comma-separated rising percentages ending at 100, such as 10,25,50,100"
        ) from None

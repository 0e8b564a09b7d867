"""tenant-reconciler: a level-based reconciler for a multi-tenant Docker + Traefik + PowerDNS platform."""

__version__ = "0.1.0"

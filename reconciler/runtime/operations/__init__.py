"""Tenant operations beside the passes: backups and restores, scheduled backups, upgrades with migrations and
pins, rollbacks, operation requests from the UI, purge, and their CLI commands.
"""

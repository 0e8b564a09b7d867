"""One reconcile pass: load, render, observe, plan, policies, apply, status (and the stages it drives:
routing through Traefik, DNS through PowerDNS). Called by the CLI (``plan``, ``apply``) and by the service's
workers; knows nothing of queues, leadership or schedules.
"""

"""What the runtime tells operators: Prometheus metrics and health endpoints, per-tenant gauges, resource usage,
Telegram alerts and logging setup. Nothing here changes the world.
"""

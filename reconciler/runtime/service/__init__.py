"""``reconciler run`` as a long-running service: the work queue and its workers, Docker events, RabbitMQ
nudges, leadership, the scheduler and the crash tracker. It decides when a pass runs; ``runtime.passes`` runs it.
"""

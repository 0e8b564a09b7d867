"""The HTTP API and the operator console (``reconciler serve``): beside the runtime, over the same store.

Writes go through ``desired_state`` exactly as ``reconciler import`` does (``desired_state.tenant_edits``); plan
previews through the runtime's own planning path (``Reconciler.compute`` → ``reconciler.planning.plan_pass``);
operations are ``operation_requests`` rows that ``reconciler run`` carries out. Nothing here is on a reconcile
pass's path. docs/api.md describes the resources, roles and examples.
"""

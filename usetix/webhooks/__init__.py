"""Outbound webhooks (Standard Webhooks): the outbox a write adds its messages to
(outbox.py: ``emit_webhook_event``), the endpoints' management (endpoints.py), the task
queue (queue.py, Huey), what a worker does with a message (delivery.py), the signed HTTP
attempt (sender.py), where a webhook may go (targets.py) and ``usetix worker`` (worker.py).

Between the blueprints, which call it, and the web plumbing, whose JSON encoding the
bodies use.
"""

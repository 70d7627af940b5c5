"""The task queue the workers take deliveries from: Huey (README, "Webhooks", says why).

Its storage is named by ``WEBHOOKS_QUEUE_URL``: none is Huey's SQLite storage, a file in the
instance folder (no extra service); ``redis://…`` or ``postgresql://…`` for workers on
several hosts. A task carries a message's row id only: what to send, and whether it is
still to be sent, is read from the database, where a worker claims it first
(usetix/webhooks/delivery.py). So a task queued twice (by the sweeper, by a replay) never
sends one attempt twice, whatever the queue does. A task is a call to work more than an
order: it claims the longest due messages, up to ``WEBHOOKS_BATCH_SIZE`` of them, its own
or others (each claim takes at least one due message, so there are never fewer tasks to
come than messages waiting), so a backlog goes out in batches and the tasks of messages
already taken find nothing to do.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from huey import Huey, PostgresHuey, RedisHuey, SqliteHuey

_KEY = "usetix_webhook_queue"
QUEUE_NAME = "usetix-webhooks"


def queue_for(app: Flask) -> Huey:
    """The app's queue, built on first use, with its tasks."""
    queue = app.extensions.get(_KEY)
    if queue is None:
        queue = app.extensions[_KEY] = _build(app)
    return queue


def _storage(app: Flask) -> Huey:
    url = app.config["WEBHOOKS_QUEUE_URL"] or "sqlite:///" + os.path.join(app.instance_path, "webhook-queue.sqlite3")
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(QUEUE_NAME, url=url, results=False)
    if url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        return PostgresHuey(QUEUE_NAME, dsn=url.replace("postgresql+psycopg://", "postgresql://", 1), results=False)
    if url.startswith("sqlite:///"):
        filename = url.removeprefix("sqlite:///")
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        return SqliteHuey(QUEUE_NAME, filename=filename, results=False)
    raise ValueError("WEBHOOKS_QUEUE_URL names a sqlite:///, redis:// or postgresql:// storage")


def _build(app: Flask) -> Huey:
    from . import delivery

    queue = _storage(app)

    @queue.task(name="deliver")
    def deliver(message_row_id: int) -> None:
        with app.app_context():
            delivery.deliver_due()  # its message, or others due, or nothing left

    queue.usetix_deliver = deliver
    return queue


def enqueue_deliveries(app: Flask, message_row_ids: list[int], delay: float | None = None) -> None:
    """Queue a delivery task for each message (after ``delay`` seconds). A queue that cannot
    be reached loses nothing: the messages are in the database, where the sweeper finds them."""
    deliver: Any = queue_for(app).usetix_deliver
    try:
        for row_id in message_row_ids:
            if delay:
                deliver.schedule((row_id,), delay=delay)
            else:
                deliver(row_id)
    except Exception:  # any storage's failure: the sweeper delivers them later
        app.logger.exception("webhooks: the task queue refused %d message(s); the sweeper will hand them out",
                             len(message_row_ids))

"""``usetix worker``: Huey's consumer (threads that run the delivery tasks, and its
scheduler, which queues the retries when they fall due) and the sweeper beside it."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from .delivery import due_messages, purge_old_attempts
from .queue import enqueue_deliveries, queue_for

logger = logging.getLogger("usetix.webhooks")
PURGE_EVERY_SECONDS = 3600


def sweep_once(app: Flask) -> int:
    """Queue again every message due and claimed by none; how many."""
    with app.app_context():
        due = due_messages()
    if due:
        enqueue_deliveries(app, due)
    return len(due)


def _sweep_forever(app: Flask, stop: threading.Event) -> None:
    interval = float(app.config["WEBHOOKS_SWEEP_SECONDS"])
    purged_at = 0.0
    while not stop.wait(interval if purged_at else 0):
        try:
            found = sweep_once(app)
            if found:
                logger.info("webhooks: the sweeper queued %d message(s) again", found)
            if time.monotonic() - purged_at > PURGE_EVERY_SECONDS:
                with app.app_context():
                    purge_old_attempts()
                purged_at = time.monotonic()
        except Exception:  # a database or queue outage: try again next round
            logger.exception("webhooks: the sweep failed; trying again in %g s", interval)
            purged_at = purged_at or time.monotonic()


def run_worker(app: Flask, threads: int | None = None) -> None:
    """Run until SIGINT (finish the tasks in hand) or SIGTERM (stop now)."""
    queue = queue_for(app)
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweep_forever, args=(app, stop), name="webhook-sweeper", daemon=True)
    sweeper.start()
    consumer = queue.create_consumer(workers=threads or int(app.config["WEBHOOKS_WORKER_THREADS"]),
                                     worker_type="thread", periodic=False, initial_delay=0.05, backoff=1.5,
                                     max_delay=0.5, scheduler_interval=1, check_worker_health=True)
    try:
        consumer.run()
    finally:
        stop.set()

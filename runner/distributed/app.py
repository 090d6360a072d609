"""The Celery application: broker, result backend and the delivery guarantees a run needs.

Configuration comes from the environment, the same on the workers and on the machines that submit:

- ``PROVISION_BROKER_URL``: the broker (default RabbitMQ on this machine,
  ``amqp://guest:guest@127.0.0.1:5672//``; ``redis://...`` works too);
- ``PROVISION_RESULT_BACKEND``: where outcomes are kept for ``submit --wait`` (default: Celery's
  database backend in PostgreSQL, ``db+postgresql+psycopg://postgres@127.0.0.1:5432/postgres``,
  through SQLAlchemy, which provision already uses; the state stores' server is the natural home);
- ``PROVISION_QUEUE``: the queue submitted runs go to and workers read (default ``provision``);
- ``PROVISION_TIMEZONE``: the time zone of the manifests' ``schedule:`` for ``provision beat``
  (default UTC), an IANA name such as ``Europe/Berlin``.

Why these settings: a run can take hours and must survive its worker's death. ``task_acks_late``
acknowledges the message only when the run has ended, so a worker that dies (kill -9, host lost)
never acknowledges it and RabbitMQ redelivers it as soon as that worker's connection closes;
``task_reject_on_worker_lost`` does the same when only the pool process running the task dies
(the OOM killer); ``worker_prefetch_multiplier = 1`` keeps a worker from holding runs it has not
started, which another worker could take; a worker that loses its broker connection stops the
runs it has in hand (they are redelivered and would otherwise run twice).
"""

from __future__ import annotations

import os
from typing import Any

from runner.errors import MissingDependency

try:
    from celery import Celery
except ImportError as exc:  # the extra is not installed: say which line installs it
    raise MissingDependency("provision worker and provision submit need the 'distributed' extra, which is not "
                            f"installed (no module named {exc.name!r}): pip install 'provision[distributed]'") from None

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "db+postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_QUEUE = "provision"


def broker_url() -> str:
    return os.environ.get("PROVISION_BROKER_URL") or DEFAULT_BROKER


def result_backend() -> str:
    return os.environ.get("PROVISION_RESULT_BACKEND") or DEFAULT_BACKEND


def queue() -> str:
    return os.environ.get("PROVISION_QUEUE") or DEFAULT_QUEUE


def timezone() -> str:
    return os.environ.get("PROVISION_TIMEZONE") or "UTC"


def settings() -> dict[str, Any]:
    """The Celery configuration, read from the environment when the app is made."""
    return {
        "broker_url": broker_url(),
        "result_backend": result_backend(),
        "task_default_queue": queue(),
        "timezone": timezone(),
        "enable_utc": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_track_started": True,  # submit --wait can tell queued from running
        "result_extended": True,  # the outcome keeps the task's name and worker
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 10,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,  # celery events / flower can follow the runs
        "database_engine_options": {"pool_pre_ping": True},
    }


def make_app() -> Celery:
    """A Celery app with provision's tasks, configured from the environment now."""
    app = Celery("provision", include=["runner.distributed.tasks"])
    app.conf.update(settings())
    return app


app = make_app()

"""``provision worker``: a Celery worker, in this process, that runs provision's tasks."""

from __future__ import annotations

import os
import socket

from runner.distributed.app import app, queue


def start(queues: list[str] | None = None, concurrency: int | None = None, loglevel: str = "INFO",
          name: str | None = None) -> int:
    """Run a worker until it is stopped (SIGTERM: it finishes the runs in hand; a run cut short
    by a harder stop is redelivered to another worker). Returns the worker's exit code.
    Messages of the 'provision' logger keep the command line's redacting handler (runner/cli.py)."""
    queues = queues or [queue(), f"{queue()}.slices"]  # runs, and the slices of fanned-out runs
    os.environ["PROVISION_WORKER_QUEUES"] = ",".join(queues)  # a coordinator here runs slices while it waits
    argv = ["worker", f"--loglevel={loglevel}", f"--queues={','.join(queues)}",
            f"--hostname={name or f'provision-{os.getpid()}@{socket.gethostname()}'}",
            "--without-mingle", "--without-gossip"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0

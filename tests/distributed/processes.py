"""Processes of the distributed tests beyond a plain worker: started in a session of their own, in
the cluster's environment, logging to a file, waited for until they say they are ready; the
cluster fixture stops them by PID with its workers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def start(cluster: Any, name: str, script: str, args: Sequence[str], ready: str,
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """``python tests/distributed/SCRIPT ARGS...`` until ``ready`` is in its log."""
    log = cluster.folder / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(REPO / "tests/distributed" / script), *args],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=cluster.folder, env=env or cluster.env, start_new_session=True)
    cluster.workers.append(process)
    wait_for(lambda: ready in log.read_text(errors="replace"), 60,
             lambda: f"{name} did not start: {log.read_text(errors='replace')[-3000:]}", process)
    return process, log


def wait_for(condition: Callable[[], Any], timeout: float, why: Callable[[], str],
             process: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            raise AssertionError(why())
        time.sleep(0.1)

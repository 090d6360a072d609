"""Real RabbitMQ and PostgreSQL (or MariaDB) for the distributed mode, and real worker processes.

The broker is the machine's RabbitMQ on 127.0.0.1:5672 (scripts/test starts one when nothing
answers there; PROVISION_TEST_BROKER_URL points elsewhere). Each test gets a queue of its own (so
tests and other users of the broker never take each other's runs), fresh PostgreSQL databases for
the state store (MariaDB, for tests that parametrize ``state_server``) and the result backend
(dropped afterwards), a copy of the quickstart manifest whose state is in that database, and
workers started as processes of their own in a new session, stopped by PID (their whole process
group)."""

from __future__ import annotations

import os
import secrets as pysecrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from runner import sampledata
from runner.demo.process import stop

REPO = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("PROVISION_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRESQL = os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
MARIADB = os.environ.get("PROVISION_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker() -> str:
    if not _answers(BROKER):
        pytest.fail(f"no broker answers at {urlsplit(BROKER).hostname}:{urlsplit(BROKER).port or 5672}: start "
                    "RabbitMQ (scripts/test does) or set PROVISION_TEST_BROKER_URL")
    return BROKER


@pytest.fixture
def databases() -> Iterator[Callable[..., str]]:
    """make(server="postgresql") -> the URL of a fresh, empty database on the machine's PostgreSQL
    (or MariaDB: ``server="mariadb"``); all are dropped afterwards."""
    admins = {"postgresql": sa.create_engine(f"{POSTGRESQL}/postgres", isolation_level="AUTOCOMMIT"),
              "mariadb": sa.create_engine(f"{MARIADB}/", isolation_level="AUTOCOMMIT")}
    made: list[tuple[str, str]] = []

    def make(server: str = "postgresql") -> str:
        name = f"prov_dist_{pysecrets.token_hex(4)}"
        with admins[server].connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        made.append((server, name))
        return f"{POSTGRESQL if server == 'postgresql' else MARIADB}/{name}"

    yield make
    for server, name in made:
        with admins[server].connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if server == "postgresql" else ""))
    for admin in admins.values():
        admin.dispose()


@pytest.fixture
def state_server() -> str:
    """Where the cluster's state store lives: PostgreSQL, unless a test parametrizes
    ``state_server`` with "mariadb" (the result backend stays in PostgreSQL)."""
    return "postgresql"


@dataclass
class Cluster:
    """One test's distributed world: the environment workers and submitters share, the manifest,
    and the workers started so far."""

    env: dict[str, str]
    manifest: Path
    folder: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, kill_at: int = 0, name: str | None = None, queues: str | None = None,
                     kill_slice: tuple[str, int] | None = None,
                     fault: list[str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
        """A worker process (one run at a time) on this test's queue, ready to take runs; with
        ``kill_at``, one that SIGKILLs itself and its pool after the target's Nth commit; with
        ``kill_slice`` (point, N), one that does so in the middle of a slice (killslice.py); with
        ``fault``, another script of this folder and its arguments (brokenrange.py FLAG).
        ``queues``: "runs" (the test's queue only: coordinators), "slices" (its .slices queue
        only), default both."""
        name = name or f"w{len(self.workers) + 1}"
        log = self.folder / f"{name}.log"
        script = fault or (["killslice.py", kill_slice[0], str(kill_slice[1])] if kill_slice
                           else ["killworker.py", str(kill_at)])
        command = [sys.executable, str(REPO / "tests/distributed" / script[0]), *script[1:],
                   "worker", "--concurrency", "1", "--name", self.node(name)]
        if queues is not None:
            q = self.env["PROVISION_QUEUE"]
            command += ["--queues", {"runs": q, "slices": f"{q}.slices"}[queues]]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=self.folder, env=self.env, start_new_session=True)
        self.workers.append(process)
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        return process, log

    def node(self, name: str) -> str:
        """A worker's node name, unique to this test: tests running at once (pytest-xdist) on one
        broker must not share one (its remote-control queue is exclusive to one connection)."""
        return f"{name}-{self.env['PROVISION_QUEUE'].rsplit('-', 1)[-1]}@%h"

    def submit(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``provision submit MANIFEST ARGS...`` as a user types it, in a process of its own."""
        return subprocess.run([sys.executable, "-m", "runner", "submit", str(self.manifest), *args],
                              env=self.env, cwd=self.folder, capture_output=True, text=True, timeout=timeout)

    def submit_async(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "runner", "submit", str(self.manifest), *args],
                                env=self.env, cwd=self.folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


@pytest.fixture
def cluster(broker: str, databases: Callable[..., str], state_server: str, tmp_path: Path) -> Iterator[Cluster]:
    """Sample HR data (2,000 people), the quickstart manifest with its state store in a fresh
    PostgreSQL (or MariaDB: ``state_server``) database, a queue of this test's own; workers are
    stopped by PID afterwards."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("out", ".provision", "data"))
    shutil.copytree(REPO / "mappings", root / "mappings")
    manifest = root / "manifests" / "quickstart.yaml"
    text = manifest.read_text(encoding="utf-8")
    state_line = next(line for line in text.splitlines() if line.startswith("state:"))
    manifest.write_text(text.replace(state_line, 'state: "${env:PROVISION_STATE_URL}"'), encoding="utf-8")
    sampledata.make(tmp_path / "data", 2000, 50, 7)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PROVISION_BROKER_URL": broker,
           "PROVISION_RESULT_BACKEND": "db+" + databases(),
           "PROVISION_QUEUE": f"provision-test-{pysecrets.token_hex(4)}",
           "PROVISION_STATE_URL": databases(state_server),
           "PROVISION_DATA": str(tmp_path / "data"),
           "PROVISION_TARGET": str(tmp_path / "app.db")}
    world = Cluster(env, manifest, tmp_path)
    yield world
    for process in world.workers:
        stop(process)
    from kombu import Connection

    with Connection(broker) as conn:  # the test's queues go with it
        conn.default_channel.queue_delete(env["PROVISION_QUEUE"])
        conn.default_channel.queue_delete(env["PROVISION_QUEUE"] + ".slices")

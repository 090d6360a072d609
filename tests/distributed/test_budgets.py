"""Shared budgets (``budget:`` in an HTTP or LDAP connector, kept in the machine's Redis): two
pipelines against one SCIM tenant, or one directory, stay under its rate and its requests in
flight together, one run from cron (``provision run``) and one on a worker; and a process killed
holding a slot gives it back when its lease lapses, never later, while a live holder keeps its
slot however long it takes.

The tenant is a real scim2-server behind a proxy that counts, as the tenant's rate limiter would:
when each request arrived and how many were in flight (tests/servers/scim.py's FaultProxy, timed);
the directory a real slapd behind tests/servers/ldap_fault_proxy.py, which times every write.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from servers.ldap_fault_proxy import LdapFaultProxy
from servers.scim import TOKEN, FaultProxy, ScimServer
from servers.slapd import Slapd

from runner import sampledata
from runner.distributed.budgets import RedisBudget

REPO = Path(__file__).resolve().parents[2]
REDIS = os.environ.get("PROVISION_TEST_BUDGET_URL", "redis://127.0.0.1:6379/0")
RATE, SLOTS = 25, 2


@pytest.fixture(scope="module")
def budget_store() -> str:
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis answers at {REDIS} ({exc}): start it (scripts/test does) or set "
                    "PROVISION_TEST_BUDGET_URL")
    return REDIS


class CountingProxy(FaultProxy):
    """The FaultProxy, recording when each request arrived and how many were in flight at most."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.arrivals: list[tuple[float, str]] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def handle(self, h) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.arrivals.append((time.monotonic(), h.path))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            super().handle(h)
        finally:
            with self.lock:
                self.in_flight -= 1

    def most_in_one_second(self) -> int:
        return most_in_one_second([t for t, _ in self.arrivals])


def most_in_one_second(times: list[float]) -> int:
    """The most of ``times`` (seconds) inside any one-second window."""
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.fixture
def tenant(tmp_path):
    server = ScimServer.start(tmp_path / "scim")
    proxy = CountingProxy(server.root)
    proxy.faults.delay = 0.05  # a tenant that takes its time: requests overlap unless held back
    yield proxy
    proxy.stop()
    server.stop()


def pipeline(folder: Path, name: str, url: str, budget: str, people: int) -> Path:
    """hr-to-scim as shipped, renamed, its own data and state, into ``url``, with a shared budget
    (written in: a worker reads the manifest in its own environment)."""
    sampledata.make(folder / "data", people, 4, len(name))
    text = (REPO / "manifests" / "hr-to-scim.yaml").read_text(encoding="utf-8")
    text = text.replace("name: hr-to-scim", f"name: {name}").replace("../mappings/", f"{REPO}/mappings/")
    text = text.replace("${env:PROVISION_DATA:-data}", str(folder / "data")).replace("${env:SCIM_URL}", url)
    text = text.replace("${env:PROVISION_STATE:-sqlite:///out/hr-to-scim.state.db}", f"sqlite:///{folder}/state.db")
    text = text.replace("    concurrency: 4\n", "    concurrency: 4\n"
                        f"    budget: {{name: {budget}, requests_per_second: {RATE}, concurrency: {SLOTS}}}\n")
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_two_pipelines_sharing_a_budget_stay_under_it_together(cluster, budget_store, tenant, tmp_path):
    budget = f"tenant-{secrets.token_hex(4)}"
    cluster.env.update(SCIM_TOKEN=TOKEN, PROVISION_BUDGET_URL=budget_store)
    env = cluster.env
    cron = pipeline(tmp_path / "a", "hr-to-scim-a", f"{tenant.url}/ta{budget}", budget, 60)
    queued = pipeline(tmp_path / "b", "hr-to-scim-b", f"{tenant.url}/tb{budget}", budget, 60)
    cluster.start_worker(name="w1")

    started = time.monotonic()
    by_cron = subprocess.Popen([sys.executable, "-m", "runner", "run", str(cron), "--output", "json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    on_worker = subprocess.run([sys.executable, "-m", "runner", "submit", str(queued), "--wait", "--output", "json"],
                               env=env, capture_output=True, text=True, timeout=180)
    out, err = by_cron.communicate(timeout=180)
    took = time.monotonic() - started

    assert by_cron.returncode == 0, err
    assert on_worker.returncode == 0, on_worker.stderr
    for done in (json.loads(out), json.loads(on_worker.stdout)):
        assert done["object_types"]["user"]["failed"] == 0 and done["object_types"]["user"]["added"] > 40, done
    paths = [p for _, p in tenant.arrivals]
    a = [t for t, p in tenant.arrivals if p.startswith(f"/ta{budget}")]
    b = [t for t, p in tenant.arrivals if p.startswith(f"/tb{budget}")]
    assert len(a) > 60 and len(b) > 60 and len(a) + len(b) == len(paths)
    assert max(a[0], b[0]) < min(a[-1], b[-1]), "the two pipelines sent at the same time"
    # together: at most RATE requests a second (one more where a window's edges meet two openings)
    assert tenant.most_in_one_second() <= RATE + 1, tenant.most_in_one_second()
    assert tenant.most_in_flight <= SLOTS, tenant.most_in_flight
    busy = max(a[-1], b[-1]) - min(a[0], b[0])
    assert len(paths) / busy <= RATE * 1.02, (len(paths), busy)
    assert len(paths) / busy >= RATE * 0.5, "the budget, not something else, set the pace"
    assert took < 60


@pytest.fixture
def directory(tmp_path):
    """A slapd behind the timing LDAP proxy, whose adds take their time (answers held 50 ms), so
    writes overlap unless something holds them back."""
    server = Slapd.start(tmp_path / "slapd")
    proxy = LdapFaultProxy(("127.0.0.1", server.port))
    proxy.inject("add", "delay", count=100000, seconds=0.05)
    yield server, proxy
    proxy.stop()
    server.stop()


def ldap_pipeline(folder: Path, name: str, url: str, base: str, budget: str, people: int) -> Path:
    """hr-to-ldap as shipped, renamed, its own data and state, into partition ``base`` at ``url``,
    with a shared budget (written in, as a worker reads the manifest in its own environment)."""
    sampledata.make(folder / "data", people, 4, len(name))
    text = (REPO / "manifests" / "hr-to-ldap.yaml").read_text(encoding="utf-8")
    text = text.replace("name: hr-to-ldap", f"name: {name}").replace("../mappings/", f"{REPO}/mappings/")
    text = text.replace("${env:PROVISION_DATA:-data}", str(folder / "data")).replace("${env:LDAP_URL}", url)
    text = text.replace("${env:PROVISION_STATE:-sqlite:///out/hr-to-ldap.state.db}", f"sqlite:///{folder}/state.db")
    # right below the partition: an add that must first create its parent entries sends those in its
    # own slot, and the proxy would count them as writes of their own
    text = text.replace("uid={uid},ou={ou},ou=people,", "uid={uid},").replace("cn={cn},ou=groups,", "cn={cn},")
    text = text.replace("${env:LDAP_BASE_DN}", base)
    text = text.replace("    concurrency: 4\n", "    concurrency: 4\n"
                        f"    budget: {{name: {budget}, requests_per_second: {RATE}, concurrency: {SLOTS}}}\n")
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_two_pipelines_sharing_a_directory_budget_stay_under_it_together(cluster, budget_store, directory,
                                                                          tmp_path):
    """The ldap connector takes a slot of the budget for each operation it sends: two pipelines
    into two partitions of one directory, four threads each, never have more than the budget's
    writes in flight or its rate, together."""
    server, proxy = directory
    budget = f"directory-{secrets.token_hex(4)}"
    cluster.env.update(LDAP_BIND_DN=server.root_dn, LDAP_PASSWORD=server.root_password,
                       PROVISION_BUDGET_URL=budget_store)
    env = cluster.env
    cron = ldap_pipeline(tmp_path / "a", "hr-to-ldap-a", proxy.url, server.suffixes[0], budget, 50)
    queued = ldap_pipeline(tmp_path / "b", "hr-to-ldap-b", proxy.url, server.suffixes[1], budget, 50)
    cluster.start_worker(name="w1")

    by_cron = subprocess.Popen([sys.executable, "-m", "runner", "run", str(cron), "--output", "json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    on_worker = subprocess.run([sys.executable, "-m", "runner", "submit", str(queued), "--wait", "--output", "json"],
                               env=env, capture_output=True, text=True, timeout=180)
    out, err = by_cron.communicate(timeout=180)
    assert by_cron.returncode == 0, err
    assert on_worker.returncode == 0, on_worker.stderr
    for done in (json.loads(out), json.loads(on_worker.stdout)):
        assert done["object_types"]["user"]["failed"] == 0 and done["object_types"]["user"]["added"] > 30, done
    assert len(proxy.writes) > 80
    assert proxy.most_writes_in_flight() <= SLOTS, proxy.most_writes_in_flight()
    assert most_in_one_second([sent for sent, _ in proxy.writes]) <= RATE + 1, proxy.writes


HOLDER = """
import sys, time
from runner.distributed.budgets import RedisBudget
budget = RedisBudget({"name": sys.argv[1], "concurrency": 1, "lease": 2}, "holder")
with budget.slot():
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_holder_killed_gives_its_slot_back_after_its_lease_and_a_live_one_keeps_it(budget_store):
    name = f"killed-{secrets.token_hex(4)}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, name], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PROVISION_BUDGET_URL": budget_store,
                                   "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        waiter = RedisBudget({"name": name, "concurrency": 1, "lease": 2}, "waiter", budget_store)

        def take() -> bool:
            return bool(waiter.store.acquire(keys=[waiter.slots_key], args=["waiter", 1, waiter.lease_us]))

        deadline = time.monotonic() + 5  # two and a half leases: the live holder renews its slot
        while time.monotonic() < deadline:
            assert not take(), "a live holder's slot was taken"
            time.sleep(0.2)

        os.killpg(holder.pid, signal.SIGKILL)  # the holder's host is lost
        killed = time.monotonic()
        holder.wait(timeout=10)
        while not take():
            assert time.monotonic() - killed < 2 + 1.5, "the dead holder's slot was not given back"
            time.sleep(0.05)
        freed = time.monotonic() - killed
        assert freed <= 3.5, freed  # within a lease (2 s) of its last renewal, never held for good

        waiter.store.client.zrem(waiter.slots_key, "waiter")
        with waiter.slot():  # and through the connector's own path: the slot is free for the next one
            pass
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)

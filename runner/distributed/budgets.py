"""Shared request budgets in Redis: a rate (GCRA) and a concurrency semaphore with leases.

An HTTP connector's ``budget: {name, requests_per_second, burst, concurrency, lease}`` block
(runner/connectors/http.py) asks, before each request, for a slot of the budget of that name;
every process that names it (``provision run`` from cron, any worker, any pipeline) draws from the
same two keys in Redis (``PROVISION_BUDGET_URL``, default ``redis://127.0.0.1:6379/0``):

- ``provision:budget:NAME:rate``: the GCRA's theoretical arrival time, in microseconds of the Redis
  server's clock (so the workers' clocks need not agree). A request reserves the next opening,
  one interval (1 / requests_per_second) after the last one reserved, and sleeps until it; with
  ``burst`` B, up to B requests may go at once after a pause. One Lua script, so two processes
  never reserve the same opening.
- ``provision:budget:NAME:slots``: a sorted set of the slots in flight, each a holder's token with
  the time its lease ends. A request takes a slot when fewer than ``concurrency`` leases are live,
  holds it while the request is in flight, and gives it back after; a thread in each process
  renews the leases it holds every third of ``lease``. A process that dies holding slots (kill -9,
  a lost host) stops renewing them, and they lapse after ``lease`` seconds (default 60, never
  forever): every acquire first drops the lapsed leases.

The order is: a slot, then the rate's opening, then the request, so both limits hold when it is
sent. Each process spaces its requests by its own ``requests_per_second`` and counts slots against
its own ``concurrency``: manifests sharing a budget must give it the same limits (if they differ,
the sharers together stay under the largest).

When Redis cannot be reached the request is not sent: the connector's SystemUnavailable stops the
pass (exit 5), as when the target itself is down, rather than run past a limit no one is counting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from runner import secrets
from runner.connectors.base import SystemUnavailable
from runner.errors import MissingDependency

try:
    import redis
except ImportError as exc:
    raise MissingDependency("a shared budget (budget: in a connector) is kept in Redis, which needs the "
                            f"'distributed' extra, which is not installed (no module named {exc.name!r}): "
                            "pip install 'provision[distributed]'") from None

logger = logging.getLogger("provision")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
PREFIX = "provision:budget:"

# KEYS[1] the rate key; ARGV[1] the interval, ARGV[2] the burst tolerance (both µs).
# Returns how long the caller waits (µs) before its request goes.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - tonumber(ARGV[2])
if wait < 0 then wait = 0 end
local after = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 60000)
return wait
"""

# KEYS[1] the slots; ARGV[1] the holder's token, ARGV[2] the concurrency, ARGV[3] the lease (µs).
# Returns 1 when the slot is taken (or was already this token's), else 0.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + lease), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.floor(lease / 1000) * 2 + 1000)
  return 1
end
return 0
"""

# KEYS[1] the slots; ARGV[1] the lease (µs); ARGV[2..] the tokens this process holds.
# Renews those still held; returns the others (lapsed, or given back since the renewer looked).
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[1])
local gone = {}
for i = 2, #ARGV do
  local ends = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if ends and tonumber(ends) > now then
    redis.call('ZADD', KEYS[1], string.format('%.0f', now + lease), ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
    table.insert(gone, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], math.floor(lease / 1000) * 2 + 1000)
return gone
"""


def url() -> str:
    return os.environ.get("PROVISION_BUDGET_URL") or DEFAULT_URL


class _Store:
    """One Redis client per process (the workers' pool processes are forked: each makes its own),
    its scripts, and the thread that renews the leases this process holds."""

    def __init__(self, address: str):
        self.address = address
        self.client = redis.Redis.from_url(address, socket_timeout=10, socket_connect_timeout=5,
                                           health_check_interval=30)
        self.reserve = self.client.register_script(RESERVE)
        self.acquire = self.client.register_script(ACQUIRE)
        self.renew = self.client.register_script(RENEW)
        self.held: dict[str, tuple[str, int, set[str]]] = {}  # budget name -> (slots key, lease µs, tokens)
        self.lock = threading.Lock()
        self.renewer: threading.Thread | None = None

    def unreachable(self, name: str, exc: Exception) -> SystemUnavailable:
        return SystemUnavailable(secrets.redact(
            f"budget {name!r}: the budget store at {secrets.mask_url(self.address)} cannot be reached "
            f"({type(exc).__name__}: {exc}); start Redis there, or set PROVISION_BUDGET_URL"))

    def hold(self, name: str, key: str, lease_us: int, token: str) -> None:
        with self.lock:
            self.held.setdefault(name, (key, lease_us, set()))[2].add(token)
            if self.renewer is None or not self.renewer.is_alive():
                self.renewer = threading.Thread(target=self._renew_forever, name="provision-budget-leases",
                                                daemon=True)
                self.renewer.start()

    def drop(self, name: str, key: str, token: str) -> None:
        with self.lock:
            entry = self.held.get(name)
            if entry is not None:
                entry[2].discard(token)
        with contextlib.suppress(redis.RedisError):  # a lease not given back lapses by itself
            self.client.zrem(key, token)

    def _renew_forever(self) -> None:
        while True:
            with self.lock:
                work = [(name, key, lease, sorted(tokens)) for name, (key, lease, tokens) in self.held.items()
                        if tokens]
                shortest = min((lease for _, _, lease, _ in work), default=60_000_000)
            time.sleep(max(shortest / 3 / 1e6, 0.2))
            for name, key, lease, tokens in work:
                try:
                    gone = [g.decode() if isinstance(g, bytes) else g
                            for g in self.renew(keys=[key], args=[lease, *tokens])]
                except redis.RedisError as exc:
                    logger.warning("budget %r: cannot renew the leases of slots in flight (%s); they lapse "
                                   "after %g s", name, exc, lease / 1e6)
                    continue
                with self.lock:  # those given back meanwhile are not lost
                    lost = len([g for g in gone if g in self.held.get(name, ("", 0, set()))[2]])
                if lost:
                    logger.warning("budget %r: %d slot(s) of this process lapsed while its requests were still in "
                                   "flight (the process stalled longer than the lease); raise budget.lease",
                                   name, lost)


_stores: dict[tuple[int, str], _Store] = {}
_stores_lock = threading.Lock()


def _store(address: str) -> _Store:
    key = (os.getpid(), address)  # a forked process makes its own connection and renewer
    with _stores_lock:
        if key not in _stores:
            _stores[key] = _Store(address)
        return _stores[key]


class RedisBudget:
    """A connector's view of one shared budget (runner/budgets.py's Budget)."""

    def __init__(self, block: Mapping[str, Any], label: str, address: str | None = None):
        self.name = str(block["name"])
        self.label = label
        rate = block.get("requests_per_second")
        self.interval_us = round(1e6 / float(rate)) if rate else 0
        self.tolerance_us = self.interval_us * (int(block.get("burst", 1)) - 1)
        self.concurrency = int(block["concurrency"]) if block.get("concurrency") else 0
        self.lease_us = round(float(block.get("lease", 60)) * 1e6)
        self.rate_key = f"{PREFIX}{self.name}:rate"
        self.slots_key = f"{PREFIX}{self.name}:slots"
        self.store = _store(address or url())
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{label}"
        try:
            self.store.client.ping()
        except redis.RedisError as exc:
            raise self.store.unreachable(self.name, exc) from None

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        token = self._take_slot() if self.concurrency else None
        try:
            self._wait_for_rate()
            yield
        finally:
            if token is not None:
                self.store.drop(self.name, self.slots_key, token)

    def _take_slot(self) -> str:
        token = f"{self.holder}:{uuid.uuid4().hex[:12]}"
        pause, waited, said = 0.005, 0.0, 0.0
        while True:
            try:
                taken = int(self.store.acquire(keys=[self.slots_key], args=[token, self.concurrency, self.lease_us]))
            except redis.RedisError as exc:
                raise self.store.unreachable(self.name, exc) from None
            if taken:
                self.store.hold(self.name, self.slots_key, self.lease_us, token)
                return token
            if waited - said >= 60:
                said = waited
                logger.info("%s: waited %.0f s for a slot of budget %r (all %d in flight elsewhere)", self.label,
                            waited, self.name, self.concurrency)
            sleep = pause * random.uniform(0.5, 1.5)
            time.sleep(sleep)
            waited += sleep
            pause = min(pause * 1.5, 0.1)

    def _wait_for_rate(self) -> None:
        if not self.interval_us:
            return
        try:
            wait_us = int(self.store.reserve(keys=[self.rate_key], args=[self.interval_us, self.tolerance_us]))
        except redis.RedisError as exc:
            raise self.store.unreachable(self.name, exc) from None
        if wait_us > 0:
            time.sleep(wait_us / 1e6)


def open_budget(block: Mapping[str, Any], label: str) -> RedisBudget:
    """The provider runner/budgets.py calls for a connector's ``budget:`` block."""
    return RedisBudget(block, label)

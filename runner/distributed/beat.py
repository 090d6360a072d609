"""``provision beat MANIFEST_OR_DIR...``: celery beat, firing a run of each manifest with ``schedule:``.

One beat entry per manifest whose ``schedule:`` (runner/manifest/cron.py) is set: at each firing it
sends ``provision.run`` for the manifest's absolute path, as ``provision submit`` does, with
``trigger="beat"``, so a firing that finds the pipeline's lock held is recorded ``skipped`` by
the worker, neither retried nor failed (tasks.py). The schedules are ``celery.schedules.crontab``
in the time zone ``PROVISION_TIMEZONE`` (default UTC).

Why a command of its own rather than ``provision worker --beat``: exactly one beat must run for
a set of manifests (two would fire every run twice; the lock makes the second a skip, but the
noise and the wasted worker are real), while workers are many and come and go. Celery's own advice
is the same (``worker -B`` is for development). So beat is one small service (one systemd unit,
a Kubernetes Deployment with ``replicas: 1``), workers another.

What beat adds to celery's ``PersistentScheduler`` (:class:`ManifestScheduler`):

- the manifests are read again every ``rescan`` seconds (default 60): a manifest added to a
  folder, a schedule changed or removed takes effect without a restart; a manifest that became
  invalid keeps its previous entry and is reported in the log;
- each firing is written to the journal (``queued``, by ``beat``) before it is sent, so
  ``provision status`` lists it;
- a firing whose previous firing is still waiting in the queue (no worker free to take it) is
  not sent again: the queue never fills with runs of one pipeline that would each find nothing
  to do. After a day in the queue the previous one counts as lost (a broker that lost its
  message) and the firing goes.

The schedule file (celery's shelve: when each entry last fired) survives restarts, so a firing
that fell in a restart is sent once when beat is back.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery.beat import PersistentScheduler

from runner import secrets
from runner.distributed.app import app, queue
from runner.distributed.journal import journal
from runner.errors import ManifestError, Problem, UsageError
from runner.manifest import cron
from runner.manifest.yamlfile import Located, read_yaml

logger = logging.getLogger("provision")

TASK = "provision.run"
STUCK = timedelta(days=1)  # a firing queued longer than this is taken as lost: the next one goes


@dataclass(frozen=True)
class Scheduled:
    """A manifest with a ``schedule:``."""

    manifest: str  # absolute
    pipeline: str
    schedule: str  # as written


@dataclass
class Found:
    scheduled: list[Scheduled]
    problems: list[Problem]
    unscheduled: list[str]  # manifests named on the command line that have no schedule:
    missing: list[str]  # named on the command line, and not there


def find(sources: Sequence[Path]) -> Found:
    """The scheduled manifests among ``sources``: files, and the ``*.yaml``/``*.yml`` manifests
    directly in folders (mapping files and tests there are not manifests and are passed over).
    Only what beat needs is checked: that the file reads as YAML (a folder's file that does not is
    reported too: it may be a manifest) and its ``schedule:``; the rest
    of the manifest is the worker's to check when it runs it (and ``provision validate``'s)."""
    found = Found([], [], [], [])
    for source in sources:
        if source.is_dir():
            files = sorted(p for p in source.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            for file in files:
                _read(file, found, named=False)
        elif source.is_file():
            _read(source, found, named=True)
        else:
            found.missing.append(str(source))
    return found


def _read(file: Path, found: Found, named: bool) -> None:
    located = Located()
    data = read_yaml(file, located, display=str(file))
    if data is None and located.problems:  # unreadable: maybe a manifest, so said even in a folder
        found.problems += located.problems
        return
    if not isinstance(data, dict) or "object_types" not in data or "connectors" not in data:
        if named:
            found.problems.append(Problem(str(file), 1, 1, "", "not a manifest (no connectors: and object_types:)"))
        return
    found.problems += [p for p in located.problems if p.path in ("schedule", "name")]
    if "schedule" not in data:
        if named:
            found.unscheduled.append(str(file))
        return
    why = cron.problem(data["schedule"])
    if why:
        found.problems.append(located.problem(("schedule",), why))
        return
    name = data.get("name") if isinstance(data.get("name"), str) else file.stem
    found.scheduled.append(Scheduled(str(file.resolve()), name, str(data["schedule"])))


def entries(scheduled: Iterable[Scheduled], to_queue: str | None = None) -> dict[str, dict[str, Any]]:
    """Celery beat entries, one per manifest, named by its absolute path."""
    where = to_queue or queue()
    return {s.manifest: {"task": TASK, "schedule": cron.crontab(s.schedule, app=app), "args": [s.manifest, {}],
                         "kwargs": {"trigger": "beat"}, "options": {"queue": where}}
            for s in scheduled}


class ManifestScheduler(PersistentScheduler):
    """celery beat's persistent scheduler over the manifests' schedules (see the module's text)."""

    sources: Sequence[Path] = ()
    rescan_every: float = 60.0
    to_queue: str | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        self._scanned = time.monotonic()
        self._current: dict[str, dict[str, Any]] = dict(app.conf.beat_schedule or {})
        self._reported: set[str] = set()  # problems logged already: said once, not every rescan
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        now = self.app.now()
        for name, entry in sorted(self.schedule.items()):
            if entry.task == TASK:
                due = now + entry.schedule.remaining_estimate(entry.last_run_at)
                logger.info("beat: %s: next firing %s", name, due.isoformat(timespec="seconds"))
        logger.info("beat: ready, %d manifest(s) scheduled", sum(e.task == TASK for e in self.schedule.values()))

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if time.monotonic() - self._scanned >= self.rescan_every:
            self._scanned = time.monotonic()
            self._rescan()
        delay = super().tick(*args, **kwargs)
        return min(delay, max(self.rescan_every - (time.monotonic() - self._scanned), 0.1))

    def _rescan(self) -> None:
        found = find(self.sources)
        fresh = entries(found.scheduled, self.to_queue)
        said = {*(f"{m}: gone" for m in found.missing), *(str(p) for p in found.problems)}
        for missing in found.missing:
            if f"{missing}: gone" not in self._reported:
                logger.error("beat: %s is gone; its manifests are no longer scheduled", missing)
        for problem in found.problems:  # that manifest keeps the entry it had
            if str(problem) not in self._reported:
                logger.error("beat: %s (its previous schedule, if any, is kept)", secrets.redact(str(problem)))
            if problem.file and str(Path(problem.file).resolve()) in self._current:
                kept = str(Path(problem.file).resolve())
                fresh[kept] = self._current[kept]
        self._reported = said
        if _described(fresh) == _described(self._current):
            return
        for name in sorted(set(fresh) - set(self._current)):
            logger.info("beat: now scheduled: %s (%s)", name, _cron_text(fresh[name]))
        for name in sorted(set(self._current) - set(fresh)):
            logger.info("beat: no longer scheduled: %s", name)
        for name in sorted(set(fresh) & set(self._current)):
            if _cron_text(fresh[name]) != _cron_text(self._current[name]):
                logger.info("beat: schedule of %s is now %s", name, _cron_text(fresh[name]))
        self._current = fresh
        self.merge_inplace(fresh)  # entries kept keep when they last fired
        self.install_default_entries(self.schedule)  # celery.backend_cleanup, which the merge dropped
        self._heap = None  # rebuilt from the new entries on this tick

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        if entry.task != TASK:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        manifest = entry.args[0]
        waiting = _still_queued(manifest)
        if waiting is not None:
            logger.warning("beat: %s is due, but its firing of %s has not started yet (no worker free); "
                           "not sending another", manifest, waiting)
            return None
        task_id = str(uuid.uuid4())
        try:
            journal().queued(task_id, manifest, entry.options.get("queue") or queue(), "beat")
        except Exception as exc:  # noqa: BLE001 - the run matters more than its journal row
            logger.warning("beat: the run journal (provision status) could not be written: %s",
                           secrets.redact(str(exc)))
        sent = self.Entry(**{**dict(entry), "app": self.app})
        sent.options = {**entry.options, "task_id": task_id}
        result = super().apply_async(sent, producer=producer, advance=advance, **kwargs)
        logger.info("beat: sent a run of %s (task %s)", manifest, task_id)  # once the broker has it
        return result


def _still_queued(manifest: str) -> str | None:
    """When the newest firing of ``manifest`` is still waiting in the queue (and not for a day):
    when it was sent. None when it was taken, or the journal cannot tell."""
    try:
        latest = journal().latest(manifest)
    except Exception:  # noqa: BLE001 - no journal: send, as beat without one would
        return None
    if latest is None or latest["state"] != "queued" or latest["trigger"] != "beat" or latest["started"]:
        return None
    try:
        sent = datetime.strptime(latest["submitted"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    return latest["submitted"] if datetime.now(UTC) - sent < STUCK else None


def _described(table: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {k: (_cron_text(v), str(v.get("options"))) for k, v in table.items()}


def _cron_text(entry: dict[str, Any]) -> str:
    s = entry["schedule"]
    return " ".join(str(getattr(s, f"_orig_{f}", "?")) for f in ("minute", "hour", "day_of_month",
                                                               "month_of_year", "day_of_week"))


def default_schedule_file() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "provision" / "beat-schedule"


def start(sources: Sequence[Path], schedule_file: Path | None = None, max_interval: float | None = None,
          rescan: float = 60.0, loglevel: str = "INFO") -> int:
    """Run celery beat in this process until SIGTERM or SIGINT. ManifestError (exit 2) when a
    manifest cannot be read or its schedule is wrong."""
    try:
        app.timezone  # noqa: B018 - PROVISION_TIMEZONE, read now: an unknown zone is a usage error
    except Exception:  # noqa: BLE001 - zoneinfo's ZoneInfoNotFoundError, ValueError
        raise UsageError(f"PROVISION_TIMEZONE={app.conf.timezone!r} is not a time zone; give an IANA name such as "
                         "Europe/Berlin, or leave it unset for UTC") from None
    found = find(sources)
    if found.missing:
        raise UsageError(f"no such manifest or folder: {', '.join(found.missing)}")
    if found.problems:
        raise ManifestError(found.problems)
    for file in found.unscheduled:
        logger.warning("beat: %s has no schedule:, so beat never runs it", file)
    if not found.scheduled:
        logger.warning("beat: no manifest with schedule: in %s yet; looking again every %g s",
                       ", ".join(map(str, sources)), rescan)
    app.conf.beat_schedule = entries(found.scheduled)
    for s in found.scheduled:
        logger.info("beat: scheduled: %s (%s, %s %s)", s.manifest, s.pipeline, s.schedule, app.conf.timezone)
    ManifestScheduler.sources = list(sources)
    ManifestScheduler.rescan_every = rescan
    path = schedule_file or default_schedule_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    beat = app.Beat(scheduler=ManifestScheduler, schedule=str(path), max_interval=max_interval,
                    loglevel=loglevel, quiet=True)
    try:
        beat.run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0

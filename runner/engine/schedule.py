"""Scheduler files for one pipeline: a crontab line, a systemd service and timer, a Kubernetes CronJob.

``provision schedule FILE --cron | --systemd | --kubernetes`` (docs/scheduling.md). Everything here
returns text; the command line prints it or has :func:`write_files` put it in a folder.

What the files rely on, rather than re-implement:

- overlap: the pipeline's lock in the state store refuses a second run (exit 3), so no ``flock``;
  systemd never starts a unit that is still running and a CronJob says ``concurrencyPolicy: Forbid``;
- time: ``run --time-limit`` stops a run cleanly at a safe point (exit 3); the scheduler's own
  limit (``timeout``, ``TimeoutStartSec=``, ``activeDeadlineSeconds``) is a later backstop that
  sends SIGTERM, which a run also survives (what is in flight is recorded, exit 143);
- secrets: the manifest reads them through ``${env:NAME}``; the files name the variables and
  where they come from (an environment file, a Kubernetes Secret), never their values.

The pipeline's facts (its name, state store, variables, mapping files) are read from the
manifest's text as written, so the files do not depend on which secrets the machine that
generates them happens to hold. The manifest is checked as ``provision validate`` checks it
first; a variable that is not set here is no problem: the scheduler provides it.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from runner import durations, secrets
from runner.errors import ManifestError, ProvisionError, StateError, StoppedError, Unavailable, UsageError
from runner.mapping.checks import load
from runner.sqlutil import sqlalchemy_url

# Exit codes as the command line returns them (runner/cli.py; docs/reliability.md). A CronJob's
# podFailurePolicy fails the job at once on the first three: a retry a minute later cannot help.
FAILED = ProvisionError.exit_code  # 1: some objects failed, or a pass stopped (the next run retries them)
INVALID = ManifestError.exit_code  # 2: the manifest or the command is wrong: a person must fix it
STOPPED = StoppedError.exit_code  # 3: the lock, the deletion guard, quarantine, the time limit
ENVIRONMENT = StateError.exit_code  # 4: the machine or the state store (down, locked, full): often passes
UNAVAILABLE = Unavailable.exit_code  # 5: a system down or refusing the credentials: often passes

FORMATS = ("cron", "systemd", "kubernetes")
DEFAULT_EVERY = "hourly"
DEFAULT_ENV_DIR = Path("/etc/provision")
DEFAULT_CRON_LOG_DIR = Path("/var/log/provision")
K8S_MOUNT = "/etc/provision"
MAX_DEFAULT_LIMIT = 50 * 60  # the default time limit when the interval is not known (an OnCalendar passed through)

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")  # as runner/manifest/yamlfile.py reads them
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL_SECRET_KEY = re.compile(r"(?:^|_)(?:password|secret|token)$", re.IGNORECASE)
_UNSET = re.compile(r"environment variable ([A-Za-z_][A-Za-z0-9_]*) is not set")
_UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_K8S_CRONJOB_MAX = 52  # a CronJob's name: the Job controller appends 11 characters


# ---- the pipeline, as its manifest is written ---------------------------------------------------


@dataclass(frozen=True)
class EnvVar:
    """A variable the manifest reads with ``${env:NAME}``; ``required`` when some reference has no default."""

    name: str
    required: bool


@dataclass(frozen=True)
class Pipeline:
    """What the scheduler files need to know about a pipeline."""

    name: str
    manifest: Path  # absolute
    files: tuple[Path, ...]  # the manifest and the mapping files it names, absolute
    state: str  # ``state:`` as written (``${env:}`` references kept), or the default's description
    state_kind: str  # "sqlite", "server" or "unknown" (a variable not set here decides)
    state_from: str | None  # the variable ``state:`` is (``${env:NAME}``, maybe with a default), if it is one
    writes: tuple[Path, ...]  # folders a run writes: SQLite state and targets, log_file
    env: tuple[EnvVar, ...]
    file_refs: tuple[str, ...]  # ``${file:PATH}`` references, as written
    literal_secrets: tuple[str, ...]  # where the manifest itself holds a password (path, never the value)


def read_pipeline(path: str | Path, environ: Mapping[str, str]) -> Pipeline:
    """Check the manifest as ``provision validate`` does, then read its facts from the text.

    Raises ManifestError (exit 2) for any problem but an unset variable: those are what the
    scheduler will provide. ``environ`` resolves the paths of SQLite files (never printed values)."""
    manifest = Path(path).resolve()
    _check(Path(path))
    data = _yaml(manifest)
    base = manifest.parent
    texts = _strings(data)
    files = [manifest]
    literal = list(_literal_secrets(data))
    for ot in data.get("object_types") or []:
        ref = ot.get("mapping") if isinstance(ot, dict) else None
        if isinstance(ref, str):
            resolved = _resolve(ref, environ)
            mapping = Path(os.path.normpath(base / (resolved if resolved is not None else ref)))
            if mapping not in files:
                files.append(mapping)
                mapping_data = _yaml(mapping)
                texts += _strings(mapping_data)
                literal += [f"{mapping.name}: {at}" for at in _literal_secrets(mapping_data)]
    name = _resolve(str(data.get("name", "")), environ) or str(data.get("name", ""))
    state_raw = data.get("state")
    if state_raw is None:
        state = f"sqlite:///{base / '.provision' / (name + '.db')} (the default)"
        state_file: Path | None = base / ".provision" / f"{name}.db"
        kind = "sqlite"
    else:
        state = str(state_raw)
        kind, state_file = _store_kind(state, base, environ)
    writes = [state_file.parent] if state_file is not None else []
    for connector in (data.get("connectors") or {}).values():
        url = connector.get("url") if isinstance(connector, dict) else None
        if isinstance(url, str):
            _, file = _store_kind(url, base, environ)
            if file is not None:
                writes.append(file.parent)
    log_file = data.get("log_file")
    if isinstance(log_file, str) and _resolve(log_file, environ):
        writes.append((base / str(_resolve(log_file, environ))).parent)
    return Pipeline(name=name, manifest=manifest, files=tuple(files), state=state, state_kind=kind,
                    state_from=_whole_reference(state), writes=_outermost(writes),
                    env=tuple(_env_refs(texts)), file_refs=tuple(_file_refs(texts)),
                    literal_secrets=tuple(literal))


def _check(path: Path) -> None:
    """``provision validate``'s checks; problems that are only unset variables are let through."""
    try:
        load(path)
    except ManifestError as exc:
        if not all(_UNSET.search(p.message) for p in exc.problems):
            raise


def _yaml(file: Path) -> Any:
    """The file's data as written (``${...}`` not resolved). The loader already accepted it."""
    with open(file, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return data if isinstance(data, dict) else {}


def _strings(data: Any) -> list[str]:
    """Every string value in ``data``, in document order (comments are not values)."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for value in data.values() for s in _strings(value)]
    if isinstance(data, list):
        return [s for value in data for s in _strings(value)]
    return []


def _references(text: str) -> Iterator[tuple[str, str]]:
    """(kind, rest) of each ``${kind:rest}`` in ``text``; ``$${`` is a literal."""
    for match in _REF.finditer(text):
        if match.group(1) is not None:
            kind, _, rest = match.group(1).partition(":")
            yield kind, rest


def _env_refs(texts: list[str]) -> list[EnvVar]:
    found: dict[str, bool] = {}
    for text in texts:
        for kind, rest in _references(text):
            name, has_default, _ = rest.partition(":-")
            if kind == "env" and _ENV_NAME.fullmatch(name):
                found[name] = found.get(name, False) or not has_default
    return [EnvVar(name, required) for name, required in found.items()]


def _whole_reference(text: str) -> str | None:
    """NAME when ``text`` is one ``${env:NAME}`` or ``${env:NAME:-default}`` and nothing else."""
    match = _REF.fullmatch(text.strip())
    kind, _, rest = (match.group(1) or "").partition(":") if match else ("", "", "")
    name = rest.partition(":-")[0]
    return name if kind == "env" and _ENV_NAME.fullmatch(name) else None


def _file_refs(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(rest for text in texts for kind, rest in _references(text) if kind == "file"))


def _resolve(text: str, environ: Mapping[str, str]) -> str | None:
    """``text`` with its ``${env:}`` references resolved as a run here would; None when one is unset
    without a default, or when it reads a file."""
    unresolved = False

    def replace_ref(match: re.Match[str]) -> str:
        nonlocal unresolved
        if match.group(1) is None:
            return "${"
        kind, _, rest = match.group(1).partition(":")
        name, has_default, default = rest.partition(":-")
        value = environ.get(name) if kind == "env" else None
        if value is None or (has_default and value == ""):
            if kind == "env" and has_default:
                return default
            unresolved = True
            return ""
        return value

    out = _REF.sub(replace_ref, text)
    return None if unresolved else out


def _store_kind(url: str, base: Path, environ: Mapping[str, str]) -> tuple[str, Path | None]:
    """("sqlite", its file) / ("server", None) / ("unknown", None) for a SQLAlchemy URL as written."""
    resolved = _resolve(url, environ)
    if resolved is None:
        return ("sqlite" if url.startswith("sqlite:") else "unknown"), None
    if not resolved.startswith("sqlite:"):
        return "server", None
    try:
        database = sqlalchemy_url(resolved, base).database
    except Exception:  # noqa: BLE001 - the loader accepted the manifest; a URL built at run time may still be odd
        return "sqlite", None
    if database in (None, "", ":memory:"):
        return "sqlite", None
    return "sqlite", Path(database)


def _outermost(folders: list[Path]) -> tuple[Path, ...]:
    """The folders, without those inside another one of them, in first-seen order."""
    unique = list(dict.fromkeys(Path(os.path.normpath(f)) for f in folders))
    return tuple(f for f in unique if not any(o != f and f.is_relative_to(o) for o in unique))


def _literal_secrets(data: Any, at: str = "") -> Iterator[str]:
    """Where the manifest holds a password itself (a ``password:`` or ``token:`` key, a URL's password)."""
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{at}.{key}" if at else str(key)
            if isinstance(value, str) and "${" not in value and value and _LITERAL_SECRET_KEY.search(str(key)):
                yield here
            else:
                yield from _literal_secrets(value, here)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _literal_secrets(value, f"{at}[{i}]")
    elif isinstance(data, str) and any(not p.startswith("${") for p in secrets.url_passwords(data)):
        yield at


# ---- when: --every ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Every:
    """When the pipeline runs: the same moments as a cron expression and as a systemd OnCalendar."""

    text: str  # as given
    words: str  # for the files' comments: "every hour", "on cron '0 3 * * 1-5'"
    cron: str | None  # None: an OnCalendar expression passed through, systemd only
    calendar: str | None  # None: a cron expression systemd cannot say (see why_no_calendar)
    interval: int | None  # the shortest time between two runs, in seconds, when known
    why_no_calendar: str = ""


_NAMED = {"hourly": ("0 * * * *", "hourly", 3600), "daily": ("0 0 * * *", "daily", 86400),
          "weekly": ("0 0 * * 1", "weekly", 7 * 86400), "monthly": ("0 0 1 * *", "monthly", 28 * 86400)}
_NAMED_WORDS = {"hourly": "every hour", "daily": "every day at 00:00", "weekly": "every Monday at 00:00",
                "monthly": "on the first of every month at 00:00"}
_SYSTEMD_WORDS = {"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
                  "semiannually"}
_CALENDAR = re.compile(r"[\w*:.,/~+ -]+")
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"], 1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/-]+")


def parse_every(text: str) -> Every:
    """``hourly``, ``daily``, ``weekly``, ``monthly``; an interval that divides an hour or a day
    (``15m``, ``2h``); a cron expression (five fields); or, for systemd only, any OnCalendar
    expression (``Mon..Fri *-*-* 06:30``). Raises UsageError naming what is wrong."""
    text = " ".join(text.split())
    if text in _NAMED:
        cron, calendar, interval = _NAMED[text]
        return Every(text, _NAMED_WORDS[text], cron, calendar, interval)
    seconds = durations.seconds(text)
    if seconds is not None:
        return _interval(text, int(seconds))
    fields = text.split(" ")
    if len(fields) == 5 and all(_CRON_FIELD.fullmatch(f) for f in fields):
        return _cron(text, fields)
    if len(fields) == 5 or not _CALENDAR.fullmatch(text) or not (
            set(text) & set(":*-") or text.lower() in _SYSTEMD_WORDS):
        raise UsageError(f"--every {text!r}: not a schedule; give hourly, daily, weekly, monthly, an interval "
                         "(15m, 2h), a cron expression of five fields (minute hour day month weekday) or, for "
                         "--systemd, an OnCalendar expression (Mon..Fri *-*-* 06:30)")
    return Every(text, f"at OnCalendar {text!r}", None, text, None)


def _interval(text: str, seconds: int) -> Every:
    minutes, hours = seconds // 60, seconds // 3600
    if seconds % 60 == 0 and 0 < minutes < 60 and 60 % minutes == 0:
        return Every(text, f"every {text}", f"*/{minutes} * * * *" if minutes > 1 else "* * * * *",
                     f"*:00/{minutes}", seconds)
    if seconds % 3600 == 0 and 0 < hours < 24 and 24 % hours == 0:
        return Every(text, f"every {text}", f"0 */{hours} * * *" if hours > 1 else "0 * * * *",
                     f"00/{hours}:00", seconds)
    if seconds == 86400:
        return Every(text, _NAMED_WORDS["daily"], *_NAMED["daily"][:2], seconds)
    raise UsageError(f"--every {text}: an interval must divide an hour (1m, 5m, 10m, 15m, 20m, 30m) or a day "
                     "(1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d), so that every hour or day starts the same way; "
                     "give a cron expression for anything else")


def _cron(text: str, fields: list[str]) -> Every:
    values: list[set[int]] = []
    for (what, low, high), spec in zip(_FIELDS, fields, strict=True):
        names = _MONTHS if what == "month" else _DAYS if what == "day of week" else {}
        values.append(_cron_field(text, what, spec, low, high, names))
    minutes, hours, days, months, weekdays = values
    weekdays = {d % 7 for d in weekdays}
    times = sorted(h * 60 + m for h in hours for m in minutes)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)] + [times[0] + 1440 - times[-1]]
    interval = min(gaps) * 60
    day_star, weekday_star = fields[2].startswith("*"), fields[4].startswith("*")
    if not day_star and not weekday_star:  # cron runs when EITHER matches; OnCalendar needs both
        return Every(text, f"on cron {text!r}", text, None, interval,
                     "it restricts both the day of the month and the day of the week, which cron reads as "
                     "either one and systemd as both; give the timer two OnCalendar= lines by hand")
    # one of them is "*..." (even "*/2"): cron needs both sets to match, as OnCalendar does
    calendar = (("" if weekdays == set(range(7)) else _days_text(weekdays) + " ")
                + f"*-{_calendar_field(months, 1, 12, '*')}-{_calendar_field(days, 1, 31, '*')} "
                + f"{_calendar_field(hours, 0, 23, '*')}:{_calendar_field(minutes, 0, 59, '*')}:00")
    return Every(text, f"on cron {text!r}", text, calendar, interval)


def _cron_field(text: str, what: str, spec: str, low: int, high: int, names: Mapping[str, int]) -> set[int]:
    def number(word: str) -> int:
        value = names.get(word.lower()) if not word.isdigit() else int(word)
        if value is None or not low <= value <= high:
            raise UsageError(f"--every {text!r}: {what} {word!r} is not one of {low}-{high}"
                             + (f" or {', '.join(list(names)[:3])}, ..." if names else ""))
        return value

    out: set[int] = set()
    for part in spec.split(","):
        body, slash, step_text = part.partition("/")
        if slash and not step_text.isdigit() or step_text == "0":
            raise UsageError(f"--every {text!r}: {what} {part!r}: the step after '/' must be a number above 0")
        step = int(step_text) if slash else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise UsageError(f"--every {text!r}: {what} {part!r}: the range runs backwards")
        else:
            start = number(body)
            end = high if slash else start
        out.update(range(start, end + 1, step))
    return out


def _calendar_field(values: set[int], low: int, high: int, star: str) -> str:
    """An OnCalendar component: ``*``, ``00/15`` (a step to the end), or a list of values and ``a..b`` ranges."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return star
    if len(ordered) > 2:
        step = ordered[1] - ordered[0]
        if ordered == list(range(ordered[0], high + 1, step)) and ordered[-1] + step > high:
            return f"{ordered[0]:02d}/{step}"
    return ",".join(f"{a:02d}" if a == b else f"{a:02d}..{b:02d}" for a, b in _runs(ordered))


def _days_text(days: set[int]) -> str:
    return ",".join(_DAY_NAMES[a] if a == b else f"{_DAY_NAMES[a]}..{_DAY_NAMES[b]}" for a, b in _runs(sorted(days)))


def _runs(ordered: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive values as (first, last) pairs; pairs of two stay two values."""
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        if prev - start == 1:
            yield start, start
            yield prev, prev
        else:
            yield start, prev
        if value is not None:
            start = prev = value


# ---- options and results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What ``provision schedule`` was asked for, defaults already worked out (:func:`time_limit`,
    :func:`default_command`)."""

    every: Every
    command: str  # the provision executable the scheduler runs (absolute for cron and systemd)
    working_dir: Path  # where the run starts, on the machine that runs it
    here: Path  # the folder that is working_dir on the machine writing the files (a checkout of the same repository)
    time_limit: float | None = None  # seconds; None: none at all (``--time-limit none``)
    user: str | None = None
    name: str | None = None
    image: str | None = None  # kubernetes
    env_file: Path | None = None  # cron and systemd
    cron_log: Path | None = None
    state_url_env: str | None = None  # kubernetes


def time_limit(text: str | None, every: Every) -> float | None:
    """``--time-limit``: a duration, ``none``, or by default five sixths of the interval (50m for
    hourly), so that a run ends before the next one is due."""
    if text is None:
        if every.interval is None:
            return MAX_DEFAULT_LIMIT
        limit = every.interval * 5 / 6
        return math.floor(limit / 60) * 60 if limit >= 120 else math.floor(limit)
    if text.strip().lower() == "none":
        return None
    seconds = durations.seconds(text)
    if seconds is None or seconds < 1:
        raise UsageError(f"--time-limit {text!r}: give a duration such as 50m, 2h or 90s, or none")
    return seconds


def backstop(limit: float) -> int:
    """The scheduler's own limit: the run's plus a tenth (at least a minute, in whole minutes)."""
    margin = max(60, math.ceil(limit / 10 / 60) * 60)
    return math.ceil(limit) + margin


def human(seconds: float) -> str:
    """``3h``, ``50m`` or ``90s``: one unit, as run --time-limit, timeout(1) and systemd all read it."""
    whole = math.ceil(seconds)
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


@dataclass
class Generated:
    """The files for one scheduler, by file name, and what the person should know about them."""

    kind: str
    pipeline: str
    name: str
    files: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    environment: tuple[EnvVar, ...] = ()

    def text(self) -> str:
        return "\n".join(self.files.values())

    def as_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "format": self.kind, "name": self.name, "files": self.files,
                "environment": [{"name": v.name, "required": v.required} for v in self.environment],
                "warnings": self.warnings}


def generate(path: str | Path, kind: str, options: Options, environ: Mapping[str, str]) -> Generated:
    """The scheduler files of ``kind`` (one of FORMATS) for the manifest at ``path``."""
    pipeline = read_pipeline(path, environ)
    if kind == "cron":
        return cron(pipeline, options)
    if kind == "systemd":
        return systemd(pipeline, options)
    if kind == "kubernetes":
        return kubernetes(pipeline, options)
    raise UsageError(f"unknown scheduler {kind!r}; known: {', '.join(FORMATS)}")


def write_files(generated: Generated, folder: Path) -> list[Path]:
    """Write each file into ``folder`` (made if missing); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated.files.items():
        target = folder / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _name(pipeline: Pipeline, options: Options) -> str:
    """The file or unit name; checks ``--user`` too, which goes into the same lines."""
    name = options.name or f"provision-{pipeline.name}"
    if not _UNIT_NAME.fullmatch(name):
        raise UsageError(f"--name {name!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit")
    if options.user is not None and not _USER.fullmatch(options.user):
        raise UsageError(f"--user {options.user!r}: not a user name")
    return name


def _manifest_arg(pipeline: Pipeline, options: Options) -> str:
    """The manifest as the run's argument: relative to the working folder when it is inside it."""
    try:
        return str(pipeline.manifest.relative_to(options.here))
    except ValueError:
        return str(pipeline.manifest)


def _there(path: Path, options: Options) -> Path:
    """``path`` on the machine that runs the pipeline: inside ``here``, the same place under working_dir."""
    return _moved(path, options.here, options.working_dir)


def _moved(path: Path, here: Path, working_dir: Path) -> Path:
    try:
        return working_dir / path.relative_to(here)
    except ValueError:
        return path


def default_command(executable: str | Path | None, here: Path, working_dir: Path) -> str:
    """The provision the scheduler runs, by default the one writing the files: the same place in
    ``working_dir`` when it is inside ``here`` (a virtual environment in the checkout)."""
    if executable is None:
        return "provision"
    return str(_moved(Path(executable), here, working_dir))


def _run_args(manifest: str, limit: float | None) -> list[str]:
    return ["run", manifest] + (["--time-limit", human(limit)] if limit is not None else [])


def _env_lines(pipeline: Pipeline, where: str) -> list[str]:
    """Comment lines naming the variables the manifest reads, and where they must come from."""
    if not pipeline.env:
        return ["# The manifest reads no environment variables."]
    required = [v.name for v in pipeline.env if v.required]
    optional = [v.name for v in pipeline.env if not v.required]
    lines = [f"# The manifest reads {', '.join(required)} (required)" if required else "# The manifest reads"]
    if optional:
        lines[0] += (" and " if required else " ") + f"{', '.join(optional)} (each with a default)"
    lines.append(f"# from {where}")
    return lines


def _env_file(options: Options, name: str) -> Path:
    return options.env_file or DEFAULT_ENV_DIR / f"{name}.env"


def _exit_lines() -> list[str]:
    return [f"# Exit codes: 0 ok; {FAILED} some objects failed (the next run retries them); {INVALID} invalid manifest;",
            f"# {STOPPED} stopped (another run holds the lock, the deletion guard holds deletes, quarantine, the time "
            "limit);",
            f"# {ENVIRONMENT} the machine or the state store; {UNAVAILABLE} a system down or refusing the credentials;",
            "# 143 SIGTERM (what was in flight is recorded). docs/scheduling.md"]


# ---- cron --------------------------------------------------------------------------------------------


def cron(pipeline: Pipeline, options: Options) -> Generated:
    """One crontab line (with ``--user``, in /etc/cron.d's format, the user after the time)."""
    every, name = options.every, _name(pipeline, options)
    if every.cron is None:
        raise UsageError(f"--every {every.text!r}: cron takes hourly, daily, weekly, monthly, an interval (15m) "
                         "or a cron expression; an OnCalendar expression is for --systemd only")
    limit = options.time_limit
    env_file = _env_file(options, name)
    log = options.cron_log or DEFAULT_CRON_LOG_DIR / f"{name}.log"
    steps = [f"cd {shlex.quote(str(options.working_dir))}"]
    if any(v.required for v in pipeline.env):
        steps.append(f"set -a && . {shlex.quote(str(env_file))} && set +a")
    run = shlex.join([options.command, *_run_args(_manifest_arg(pipeline, options), limit)])
    if limit is not None:
        run = f"timeout -k 60s {human(backstop(limit))} {run}"
    steps.append(f"{run} >> {shlex.quote(str(log))} 2>&1")
    command = " && ".join(steps).replace("%", "\\%")  # an unescaped % ends a crontab command
    line = f"{every.cron} {options.user + ' ' if options.user else ''}{command}"
    header = [f"# {name}: pipeline {pipeline.name} ({pipeline.manifest.name}) {every.words}"
              + (f", at most {human(limit)} a run" if limit is not None else "") + ".",
              "# No flock: the pipeline's lock in its state store refuses a second run (exit 3, said in the log).",
              *_env_lines(pipeline, f"{env_file} (KEY='value' lines, readable by the job's user only)"
                          if any(v.required for v in pipeline.env) else
                          f"the environment; put them in {env_file} and add `set -a && . {env_file} && set +a &&` "
                          "after the cd to change them"),
              *_exit_lines()]
    if limit is not None:
        header.append(f"# The run stops itself at {human(limit)} (exit 3); timeout sends SIGTERM at "
                      f"{human(backstop(limit))} (exit 124), SIGKILL a minute later.")
    file = f"{name}.crontab" if options.user is None else name  # /etc/cron.d ignores names with a dot
    return Generated("cron", pipeline.name, name, {file: "\n".join([*header, line]) + "\n"},
                     environment=pipeline.env)


# ---- systemd -----------------------------------------------------------------------------------------


def systemd(pipeline: Pipeline, options: Options) -> Generated:
    """A oneshot ``.service`` that runs the pipeline once, and the ``.timer`` that starts it."""
    every, name = options.every, _name(pipeline, options)
    if every.calendar is None:
        raise UsageError(f"--every {every.text!r}: {every.why_no_calendar}")
    limit = options.time_limit
    env_file = _env_file(options, name)
    warnings: list[str] = []
    args = [options.command, *_run_args(_manifest_arg(pipeline, options), limit)]
    service = [f"# {name}.service: one run of pipeline {_unit_text(pipeline.name)} "
               f"({_unit_text(pipeline.manifest.name)}), started by {name}.timer.",
               "# Install: copy this file and the timer to /etc/systemd/system/, then",
               f"#   systemctl daemon-reload && systemctl enable --now {name}.timer",
               "# No SuccessExitStatus=: every exit code but 0 wants a person (systemctl --failed, OnFailure=).",
               *_exit_lines(),
               *_env_lines(pipeline, f"{env_file} (KEY='value' lines, mode 0600)"),
               "", "[Unit]", f"Description=provision: pipeline {_unit_text(pipeline.name)}",
               "Wants=network-online.target", "After=network-online.target",
               "", "[Service]", "Type=oneshot"]
    if options.user:
        service.append(f"User={_unit_text(options.user)}")
    service.append(f"WorkingDirectory={_unit_text(str(options.working_dir))}")
    if pipeline.env:
        required = any(v.required for v in pipeline.env)
        service.append(f"EnvironmentFile={'' if required else '-'}{_unit_text(str(env_file))}")
    service.append("ExecStart=" + " ".join(_exec_word(a) for a in args))
    if limit is not None:
        service += [f"# The run stops itself at {human(limit)} (exit 3). For Type=oneshot the limit is "
                    "TimeoutStartSec= (RuntimeMaxSec= does not apply):",
                    "# SIGTERM then, and provision records what is in flight (exit 143); SIGKILL after TimeoutStopSec=.",
                    f"TimeoutStartSec={human(backstop(limit))}"]
    else:
        service.append("TimeoutStartSec=infinity")
    service += ["NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", "UMask=0077"]
    service += [f"ReadWritePaths={_path_word(str(_there(folder, options)))}" for folder in pipeline.writes]
    if pipeline.state_kind == "sqlite" and not pipeline.writes:
        warnings.append(f"the state store {pipeline.state} is a SQLite file whose folder is not known here (a "
                        f"variable is not set): add ReadWritePaths=FOLDER to {name}.service, or ProtectSystem=strict "
                        "keeps the run from writing it")
    service += ["# ReadWritePaths= folders must exist before the unit starts (mkdir -p, owned by the run's user);",
                "# add one for any other place the run writes (--log-file, --metrics-file, a plugin's folder)."]
    timer = [f"# {name}.timer: starts {name}.service {every.words} (--every {every.text}).",
             "# Persistent=true: a run missed while the machine was off starts at boot.",
             "", "[Unit]", f"Description=provision: pipeline {_unit_text(pipeline.name)}, {every.words}",
             "", "[Timer]", f"OnCalendar={every.calendar}", "Persistent=true",
             f"RandomizedDelaySec={human(_spread(every))}",
             "", "[Install]", "WantedBy=timers.target"]
    return Generated("systemd", pipeline.name, name,
                     {f"{name}.service": "\n".join(service) + "\n", f"{name}.timer": "\n".join(timer) + "\n"},
                     warnings, pipeline.env)


def _spread(every: Every) -> int:
    """RandomizedDelaySec: a tenth of the interval, at most five minutes (a minute when it is not known)."""
    return 60 if every.interval is None else max(1, min(300, every.interval // 10))


def _unit_text(text: str) -> str:
    """A value in a unit file: ``%`` starts a specifier, so it is doubled."""
    return text.replace("%", "%%")


def _exec_word(word: str) -> str:
    """One word of ExecStart=: ``$`` (a variable there) escaped too."""
    return _path_word(word.replace("$", "$$"))


def _path_word(word: str) -> str:
    """One word of a unit's list (ExecStart=, ReadWritePaths=): specifiers escaped, quoted if needed."""
    word = word.replace("%", "%%")
    if re.search(r"[\s\"'\\;]", word) or not word:
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


# ---- kubernetes --------------------------------------------------------------------------------------


def kubernetes(pipeline: Pipeline, options: Options) -> Generated:
    """A ConfigMap with the manifest and its mapping files, and the CronJob that runs it."""
    every = options.every
    if every.cron is None:
        raise UsageError(f"--every {every.text!r}: a CronJob takes hourly, daily, weekly, monthly, an interval "
                         "(15m) or a cron expression; an OnCalendar expression is for --systemd only")
    if not options.image:
        raise UsageError("--kubernetes needs --image IMAGE: a container image with provision installed "
                         "(pip install 'provision[postgres]')")
    if pipeline.literal_secrets:
        raise UsageError(f"{pipeline.manifest.name}: {', '.join(pipeline.literal_secrets)} holds a password in the "
                         "manifest itself; a ConfigMap is no place for it: write ${env:NAME} there, and the CronJob "
                         "takes NAME from the Secret")
    name = _k8s_name(pipeline, options)
    secret, config = f"{name}-env", f"{name}-manifest"
    warnings: list[str] = []
    env = list(pipeline.env)
    state_env = options.state_url_env
    if state_env is not None:
        if pipeline.state_from != state_env:
            raise UsageError(f"--state-url-env {state_env}: the manifest's state: is {pipeline.state}, not this "
                             f"variable; write state: \"${{env:{state_env}}}\" in {pipeline.manifest.name} "
                             "(${env:NAME:-sqlite:///...} keeps a default for other places) so that the Secret "
                             "holds the whole URL")
        env = [replace(v, required=True) if v.name == state_env else v for v in env]
    elif pipeline.state_kind == "sqlite":
        warnings.append(
            f"pipeline {pipeline.name} keeps its state in SQLite ({pipeline.state}): a CronJob's pod loses its disk "
            "when it ends, so each run would start without state (no watermarks, no retries, no lock shared with "
            "the next pod). Use PostgreSQL: write state: \"${env:PROVISION_STATE_URL}\" in the manifest and pass "
            "--state-url-env PROVISION_STATE_URL, so the URL comes from the Secret")
    if pipeline.file_refs:
        warnings.append(f"the manifest reads {', '.join('${file:' + f + '}' for f in pipeline.file_refs)}: mount "
                        f"those files into the pod yourself (relative to the manifest, under {K8S_MOUNT})")
    root = Path(os.path.commonpath([f.parent for f in pipeline.files]))
    items = _config_items(pipeline.files, root)
    manifest_arg = pipeline.manifest.relative_to(root).as_posix()
    labels = {"app.kubernetes.io/name": "provision", "app.kubernetes.io/instance": name}
    limit = options.time_limit
    container: dict[str, Any] = {
        "name": "provision", "image": options.image, "command": ["provision"],
        "args": _run_args(manifest_arg, limit), "workingDir": K8S_MOUNT,
    }
    if env:
        container["env"] = [{"name": v.name, "valueFrom": {"secretKeyRef": {
            "name": secret, "key": v.name, **({} if v.required else {"optional": True})}}} for v in env]
    container["volumeMounts"] = [{"name": "manifest", "mountPath": K8S_MOUNT, "readOnly": True}]
    container["securityContext"] = {"allowPrivilegeEscalation": False}
    pod: dict[str, Any] = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 120}
    if options.user is not None:
        if not options.user.isdigit():
            raise UsageError(f"--user {options.user!r}: for Kubernetes, a numeric user id (runAsUser)")
        pod["securityContext"] = {"runAsUser": int(options.user), "runAsNonRoot": options.user != "0"}
    pod["containers"] = [container]
    pod["volumes"] = [{"name": "manifest", "configMap": {"name": config, "items": [
        {"key": key, "path": rel} for key, rel, _ in items]}}]
    job: dict[str, Any] = {"backoffLimit": 1}
    if limit is not None:
        job["activeDeadlineSeconds"] = backstop(limit)
    job["podFailurePolicy"] = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "provision", "operator": "In",
                                              "values": [FAILED, INVALID, STOPPED]}},
    ]}
    job["template"] = {"metadata": {"labels": labels}, "spec": pod}
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "labels": labels},
               "spec": {"schedule": every.cron, "concurrencyPolicy": "Forbid",
                        "startingDeadlineSeconds": max(60, min(600, (every.interval or 1200) // 2)),
                        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                        "jobTemplate": {"spec": job}}}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config, "labels": labels},
                 "data": {key: text for key, _, text in items}}
    literals = " ".join(f"--from-literal={v.name}=..." for v in env) or "(the manifest reads none)"
    header = [f"# pipeline {pipeline.name} as a Kubernetes CronJob ({every.words}), from `provision schedule "
              "--kubernetes`.",
              "# The Secret, made by hand so its values never pass through a file:",
              f"#   kubectl create secret generic {secret} {literals}",
              *(["# (" + ", ".join(v.name for v in env if not v.required) + ": optional, each has a default)"]
                if any(not v.required for v in env) else []),
              "# Then: kubectl apply -f THIS_FILE. concurrencyPolicy Forbid, and the pipeline's lock in the "
              "state store, keep runs apart.",
              f"# Exit codes {FAILED}, {INVALID} and {STOPPED} fail the job without a retry (a person should "
              f"look); {ENVIRONMENT} (the machine, the state store) and {UNAVAILABLE} (a system down) are retried once.",
              "# A pod evicted or preempted (DisruptionTarget) does not count against backoffLimit."]
    if limit is not None:
        header.append(f"# The run stops itself at {human(limit)} (exit 3); activeDeadlineSeconds ends the job at "
                      f"{human(backstop(limit))} (SIGTERM, then SIGKILL after the grace period).")
    documents = [_yaml_text(configmap), _yaml_text(cronjob)]
    text = "\n".join(header) + "\n---\n" + "---\n".join(documents)
    return Generated("kubernetes", pipeline.name, name, {f"{name}.yaml": text}, warnings, tuple(env))


def _k8s_name(pipeline: Pipeline, options: Options) -> str:
    name = options.name or "provision-" + re.sub(r"[^a-z0-9-]+", "-", pipeline.name.lower()).strip("-")
    if not _K8S_NAME.fullmatch(name) or len(name) > _K8S_CRONJOB_MAX:
        raise UsageError(f"--name {name!r}: a CronJob's name is lower-case letters, digits and '-', at most "
                         f"{_K8S_CRONJOB_MAX} characters" + ("" if options.name else "; give one with --name"))
    return name


def _config_items(files: tuple[Path, ...], root: Path) -> list[tuple[str, str, str]]:
    """(ConfigMap key, path under the mount, text) per file: the keys are flat, the paths keep the
    layout, so the manifest's ``../mappings/x.yaml`` still finds its file."""
    out, used = [], set()
    for file in files:
        rel = file.relative_to(root).as_posix()
        key = re.sub(r"[^-._a-zA-Z0-9]", "_", rel.replace("/", "."))
        while key in used:
            key = "_" + key
        used.add(key)
        out.append((key, rel, file.read_text(encoding="utf-8")))
    return out


class _Dumper(yaml.SafeDumper):
    """Block style for text with newlines (the manifest in the ConfigMap reads as it is written), and
    no anchors: the labels repeated in the pod template stay written out."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def _yaml_text(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)

"""``schedule:`` in a manifest: a cron expression, read as celery beat reads it.

``provision beat`` (runner/distributed/beat.py) fires a run of each manifest that has one, through
``celery.schedules.crontab``; :func:`problem` checks an expression the same way
(``celery.schedules.crontab_parser``, then ``crontab`` itself for dates that never occur), so
``provision validate`` refuses, at the manifest's line, what beat could not use. When celery is not
installed (single-machine ``provision run`` needs no schedule), the check is the shape only: five
fields of digits, names, ``* , - /``; beat, which has celery, refuses the rest when it starts.

Two differences from cron(8) that are refused rather than silently meant otherwise:

- a day of the week is 0-6 (Sunday 0) or ``sun``..``sat``; cron also takes 7 for Sunday;
- restricting both the day of the month and the day of the week: cron runs on days matching
  either, celery beat only on days matching both.
"""

from __future__ import annotations

import re
from typing import Any

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
# (what the field is, the lowest value, how many values, whether names are allowed)
FIELDS = (("minute", 0, 60, False), ("hour", 0, 24, False), ("day of the month", 1, 31, False),
          ("month", 1, 12, True), ("day of the week", 0, 7, True))
WHAT_TO_WRITE = ("write five fields, minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or jan-dec) "
                 "day-of-week (0-6 with Sunday 0, or sun-sat), each a number, a range a-b, a list a,b, * or "
                 "a step */n: e.g. '30 6 * * 1-5' (06:30 on weekdays), '*/15 * * * *'; or @hourly, @daily, "
                 "@weekly, @monthly, @yearly")
_SHAPE = re.compile(r"^[A-Za-z0-9*,/-]+$")
_LETTERS = re.compile(r"[A-Za-z]")


def fields(text: Any) -> tuple[str, str, str, str, str]:
    """The five fields of ``text`` (a macro such as ``@daily`` expanded); ValueError saying what is
    wrong and what to write."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a schedule is a cron expression in quotes; {WHAT_TO_WRITE}")
    spec = MACROS.get(text.strip().lower(), text.strip())
    if spec.startswith("@"):
        raise ValueError(f"{text.strip()!r} is not a schedule celery beat knows ({', '.join(sorted(MACROS))}); "
                         f"{WHAT_TO_WRITE}")
    parts = spec.split()
    if len(parts) != 5:
        extra = (" (no seconds field and no year: celery beat fires at most once a minute)"
                 if len(parts) in (6, 7) else "")
        raise ValueError(f"{spec!r} has {len(parts)} field{'s' * (len(parts) != 1)}, not 5{extra}; {WHAT_TO_WRITE}")
    values = []
    for part, (name, low, count, names) in zip(parts, FIELDS, strict=True):
        values.append(_field(part, name, low, count, names))
    if parts[2] != "*" and parts[4] != "*":
        raise ValueError(f"{spec!r} restricts both the day of the month ({parts[2]}) and the day of the week "
                         f"({parts[4]}): cron runs on days matching either, celery beat only on days matching "
                         "both; keep one of them '*' (e.g. '0 6 1 * *' or '0 6 * * 1')")
    _whole(parts)
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def problem(text: Any) -> str | None:
    """What is wrong with ``text`` as a schedule, or None."""
    try:
        fields(text)
    except ValueError as exc:
        return str(exc)
    return None


def crontab(text: str, app: Any = None) -> Any:
    """``celery.schedules.crontab`` for ``text`` (celery must be installed)."""
    from celery.schedules import crontab as celery_crontab

    minute, hour, day_of_month, month, day_of_week = fields(text)
    return celery_crontab(minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month,
                          month_of_year=month, app=app)


def _field(part: str, name: str, low: int, count: int, names: bool) -> set[int] | None:
    high = low + count - 1
    if not _SHAPE.match(part) or (not names and _LETTERS.search(part)):
        raise ValueError(f"the {name} field {part!r} is not a number ({low}-{high}), range, list, * or step; "
                         f"{WHAT_TO_WRITE}")
    try:
        from celery.schedules import crontab_parser
    except ImportError:  # no celery here: the shape is all that can be checked
        return None
    try:
        found = crontab_parser(count, low).parse(part)
    except (ValueError, crontab_parser.ParseException) as exc:
        raise ValueError(f"the {name} field {part!r} is not valid ({str(exc).rstrip('.')}){_sunday(name, part)}; "
                         f"{WHAT_TO_WRITE}") from None
    outside = sorted(n for n in found if not low <= n <= high)
    if outside:
        hint = _sunday(name, part)
        raise ValueError(f"the {name} field {part!r} has {outside[0]}, outside {low}-{high}{hint}; {WHAT_TO_WRITE}")
    return found


def _sunday(name: str, part: str) -> str:
    return " (Sunday is 0, not 7)" if name == "day of the week" and "7" in re.findall(r"\d+", part) else ""


def _whole(parts: list[str]) -> None:
    """Dates that never occur (the 30th of February), as celery's crontab refuses them."""
    try:
        from celery.schedules import crontab as celery_crontab
    except ImportError:
        return
    try:
        celery_crontab(minute=parts[0], hour=parts[1], day_of_month=parts[2], month_of_year=parts[3],
                       day_of_week=parts[4])
    except ValueError as exc:
        raise ValueError(f"{' '.join(parts)!r}: {exc}; {WHAT_TO_WRITE}") from None

"""``provision beat`` on a clock the test sets (tests only).

    python tests/distributed/clockbeat.py CLOCK_FILE provision-beat-args...

Celery beat asks ``Celery.now()`` what time it is, for the crontab schedules (when the next firing
is) and for the scheduler (when an entry last fired). Here that time is the ISO 8601 instant
written in CLOCK_FILE, read at every look, standing still in between: the test starts beat at
00:00:30, moves the clock to 00:01:00.5 and the ``* * * * *`` schedule fires at once, real
crontab arithmetic and a real beat process, without waiting a real minute. With
``--max-interval`` small, beat looks at the clock several times a second.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import celery

from runner import cli


def main(argv: list[str]) -> int:
    clock = Path(argv[0])

    def now(self: celery.Celery) -> datetime:
        return datetime.fromisoformat(clock.read_text().strip()).astimezone(self.timezone)

    celery.Celery.now = now  # type: ignore[method-assign]
    return cli.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

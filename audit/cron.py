"""Cron expressions: the one place that reads them, for config loading and for the scheduler alike.

A config that loads therefore never fails when the scheduler starts: both call `cron_trigger`, which
applies every rule (five fields, crontab's day-of-week numbering, not both day fields restricted).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_HINT = 'use five fields (minute hour day-of-month month day-of-week), e.g. "0 6 * * 1" = Mondays 06:00'


def crontab_weekdays(field_text: str) -> str:
    """Rewrite a crontab day-of-week field with numbers (0 or 7 = Sunday) into day names.

    APScheduler 3.x reads a numeric day of week with 0 = Monday, so "0 6 * * 1" would fire on Tuesdays.
    Names mean the same to both, so numbers are expanded to names. Fields with names pass unchanged.
    """
    text = field_text.strip().lower()
    if text in ("*", "?") or re.search(r"[a-z]", text):
        return text
    days: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", part)
        if not m:
            raise ValueError(f"cannot read day-of-week part '{part}'")
        start_s, end_s, step_s = m.groups()
        if start_s == "*":
            start, end = 0, 6
        else:
            start = int(start_s)
            end = int(end_s) if end_s is not None else (7 if step_s else start)
        step = int(step_s) if step_s else 1
        if not (0 <= start <= 7 and 0 <= end <= 7) or start > end or step < 1:
            raise ValueError(f"day-of-week part '{part}' is out of range (0-7, 0 and 7 are Sunday)")
        days.extend(d % 7 for d in range(start, end + 1, step))
    ordered = sorted(set(days))
    return ",".join(CRON_WEEKDAYS[d] for d in ordered)


def cron_trigger(cron: str, timezone: str = "UTC") -> CronTrigger:
    """An APScheduler CronTrigger for a crontab expression, with crontab's day-of-week numbering.

    Raises ValueError saying what is wrong. Restricting both the day of month and the day of week is
    refused: system cron runs when either matches, APScheduler only when both do.
    """
    from apscheduler.triggers.cron import CronTrigger  # loaded only when a schedule is read

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    if fields[2] not in ("*", "?") and fields[4] not in ("*", "?"):
        raise ValueError(
            "it restricts both day of month and day of week; system cron runs when either matches, "
            "this scheduler only when both do. Restrict one of them"
        )
    fields[4] = crontab_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=ZoneInfo(timezone))

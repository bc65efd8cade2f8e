"""Turning values into safe spreadsheet cells: inert text, real dates.

Everything read from a tenant is untrusted. A display name such as ``=HYPERLINK(...)`` must reach
the workbook and the CSV as plain text, never as a formula, so every string written goes through
`inert`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Characters a spreadsheet may take as the start of a formula (OWASP's list, plus LF).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
# Control characters an .xlsx file cannot hold at all.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
XLSX_MAX_TEXT = 32767


def inert(text: str) -> str:
    """The text, made unable to act as a formula: a leading quote when it starts like one."""
    text = _ILLEGAL.sub("\ufffd", text)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def text_cell(value: object) -> str | None:
    """Any scalar as inert text (None stays empty, booleans read yes/no)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return inert(str(value))[:XLSX_MAX_TEXT]


def parse_time(value: str | datetime | None) -> datetime | None:
    """An ISO-8601 string or datetime as an aware UTC datetime; None when missing or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def excel_time(value: str | datetime | None) -> datetime | None:
    """A time as Excel wants it: naive, in UTC (the column header says UTC)."""
    moment = parse_time(value)
    return moment.replace(tzinfo=None) if moment else None


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")

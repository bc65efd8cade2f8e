"""Reading a remediation error log: its address and error columns, and which documented error a row names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from audit.csvin import ADDRESS_HINT, ERROR_COLUMNS, InputError, Table, address_column, content_column, read_table
from audit.models import MAILBOX_INACTIVE, RESOURCE_NOT_FOUND, UNKNOWN_REASON, USER_INVALID, normalize_address

EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_INSIDE = re.compile(r"[^\s<>\"',;:()\[\]]+@[^\s<>\"',;:()\[\]]+\.[A-Za-z]{2,63}")

# The four documented errors, recognised from their distinctive words after lower-casing and turning
# punctuation into spaces ("Remediation Failed. Unknown Reason" == "remediation failed - unknown reason").
ERROR_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        MAILBOX_INACTIVE,
        ("mailbox is either inactive", "inactive soft deleted", "hosted on premise", "soft deleted or is hosted"),
    ),
    (USER_INVALID, ("requested user is invalid", "user is invalid")),
    (UNKNOWN_REASON, ("remediation failed unknown reason", "failed unknown reason", "unknown reason")),
    (RESOURCE_NOT_FOUND, ("resource is not found", "resource not found", "resource could not be discovered")),
)


def mailbox_address(cell: str | None) -> str:
    """The address in a cell ("smtp:A@B.example", "Ann <a@b.example>"), lower-cased; "" when there is none."""
    address = normalize_address(cell)
    if EMAIL_LIKE.match(address):
        return address
    inside = EMAIL_INSIDE.search(address)
    return inside.group(0) if inside else ""


def error_kind(text: str | None) -> str | None:
    """Which documented error the text is, whatever its case and punctuation; None when none."""
    squashed = " ".join(re.sub(r"[^a-z0-9]+", " ", (text or "").lower()).split())
    for kind, patterns in ERROR_PATTERNS:
        if any(p in squashed for p in patterns):
            return kind
    return None


@dataclass(frozen=True)
class ErrorLog:
    table: Table
    address_column: str
    error_column: str


def read_error_log(path: str | Path) -> ErrorLog:
    """The log as a table with its address and error columns found, or InputError saying what to do."""
    table = read_table(path)
    headers = ", ".join(f"'{h}'" for h in table.header) or "(none)"
    error_column = table.column(ERROR_COLUMNS) or content_column(table, error_kind)
    mailbox_column = address_column(table, exclude=[error_column or ""])
    if mailbox_column is None:
        raise InputError(f"{table.path}: no address column among {headers}. {ADDRESS_HINT}")
    if error_column is None:
        raise InputError(
            f"{table.path}: no remediation error column among {headers}. Name the column "
            "holding the error text 'Remediation Error' (or 'Error')."
        )
    if not table.rows and not table.bad_rows:
        raise InputError(f"{table.path}: the file has a header but no rows to triage.")
    return ErrorLog(table, mailbox_column, error_column)

"""Lenient reading of the CSV files admins hand us (recipient lists, remediation error logs).

Header names in any case, extra columns, UTF-8 with or without BOM, comma or semicolon, quoted fields.
Anything we cannot read becomes an InputError that says which file and what to do.
"""

from __future__ import annotations

import csv
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# One rule for every file that lists mailboxes (a recipients list, a remediation error log): the column
# is found by its header, in any case, spaces or underscores alike; failing that, the only column whose
# filled cells mostly hold addresses is used.
ADDRESS_COLUMNS = (
    "address",
    "email",
    "e-mail",
    "mail",
    "smtp address",
    "emailaddress",
    "email address",
    "recipient",
    "recipient address",
    "mailbox",
    "user principal name",
    "userprincipalname",
    "upn",
    "mailbox address",
    "user",
    "user email",
    "recipient email",
    "recipients",
    "email id",
    "smtp",
)
# Header names of the column holding the error text in a remediation error log (triage).
ERROR_COLUMNS = (
    "remediation error",
    "error",
    "error message",
    "error reason",
    "remediation error message",
    "failure reason",
    "reason",
    "remediation failure reason",
    "errors",
    "error details",
    "details",
)
ADDRESS_HINT = "Name the column holding the mailbox addresses 'Address' (or 'Mailbox', 'Email', 'UPN')."
EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_BYTES = 50 * 1024 * 1024


class InputError(Exception):
    """An input file we cannot use; str(e) is the whole message for the user."""


@dataclass(frozen=True)
class Table:
    path: Path
    header: list[str]  # as written in the file
    rows: list[dict[str, str]]  # keyed by the header as written
    bad_rows: list[tuple[int, str]]  # (line number, why) for rows we could not read

    def column(self, candidates: tuple[str, ...]) -> str | None:
        """The header (as written) whose normalised name is one of the candidates, in their order."""
        normalised = {_norm(h): h for h in self.header}
        for name in candidates:
            if _norm(name) in normalised:
                return normalised[_norm(name)]
        return None


def looks_like_address(cell: str) -> bool:
    text = cell.strip()
    if text[:5].lower() == "smtp:":
        text = text[5:].strip()
    return bool(EMAIL_LIKE.match(text))


def content_column(table: Table, test: Callable[[str], object], exclude: Sequence[str] = ()) -> str | None:
    """The only column whose filled cells mostly pass `test` (for files with unusual header names)."""
    best: list[tuple[float, str]] = []
    for header in table.header:
        if header in exclude:
            continue
        values = [row.get(header, "") for row in table.rows if row.get(header, "")]
        if values:
            share = sum(1 for v in values if test(v)) / len(values)
            if share >= 0.6:
                best.append((share, header))
    best.sort(reverse=True)
    if len(best) == 1 or (len(best) > 1 and best[0][0] > best[1][0]):
        return best[0][1]
    return None


def address_column(table: Table, exclude: Sequence[str] = ()) -> str | None:
    """The column holding the mailbox addresses, by ADDRESS_COLUMNS' rule; None when there is none."""
    named = table.column(ADDRESS_COLUMNS)
    if named is not None and named not in exclude:
        return named
    return content_column(table, looks_like_address, exclude)


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").strip().lower().split())


def read_table(path: str | Path) -> Table:
    path = Path(path)
    try:
        raw = _read_capped(path)
    except OSError as err:
        raise InputError(f"{path}: cannot read the file ({err.strerror}). Check the path and permissions.") from None
    if b"\x00" in raw[:4096]:
        raise InputError(
            f"{path}: this is not a text CSV file (it contains binary data). Export the list as CSV (UTF-8)."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path}: the file is empty. It needs a header row and one row per address.")
    first = lines[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        if not any(header):
            raise InputError(f"{path}: the first line must be a header row naming the columns.")
        rows, bad = _rows(reader, header)
    except csv.Error as err:  # e.g. a field over csv's size limit: a runaway quote or not a list at all
        raise InputError(
            f"{path}: cannot be read as CSV near line {reader.line_num} ({err}). Export it again as CSV (UTF-8)."
        ) from None
    return Table(path, header, rows, bad)


def _read_capped(path: Path) -> bytes:
    """A regular file's bytes, refused unread when it is larger than MAX_BYTES (or is a device, FIFO, ...)."""
    too_big = InputError(f"{path}: the file is larger than {MAX_BYTES // 1024 // 1024} MB; split it.")
    # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then tells what was opened.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
            raise InputError(f"{path}: {kind}. Give the path of a CSV file.")
        if st.st_size > MAX_BYTES:
            raise too_big
        raw = fh.read(MAX_BYTES + 1)  # bounded even when the file grows while it is read
    if len(raw) > MAX_BYTES:
        raise too_big
    return raw


def _rows(reader, header: list[str]) -> tuple[list[dict[str, str]], list[tuple[int, str]]]:
    rows: list[dict[str, str]] = []
    bad: list[tuple[int, str]] = []
    for number, values in enumerate(reader, start=2):
        if len(values) > len(header) and any(v.strip() for v in values[len(header) :]):
            bad.append((number, f"{len(values)} fields where the header has {len(header)}"))
            continue
        rows.append({h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)})
    return rows, bad


def read_recipients(path: str | Path) -> list[str]:
    """The addresses of a recipients list: one column named like an address column."""
    table = read_table(path)
    column = address_column(table)
    if column is None:
        headers = ", ".join(f"'{h}'" for h in table.header) or "(none)"
        raise InputError(f"{table.path}: no address column among {headers}. {ADDRESS_HINT}")
    addresses = [row[column] for row in table.rows if row[column]]
    if not addresses:
        raise InputError(f"{table.path}: the '{column}' column holds no addresses.")
    return addresses

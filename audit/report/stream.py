"""The Users sheet written while the audit still runs, so that the workbook's work overlaps Graph's waits.

    users = UsersStream(exceptions)     # before the first tenant starts
    users.add(index, tenant_result)     # from a tenant's thread as it finishes; never waits for the writer
    users.end()                         # every tenant added
    write_reports(result, out_dir, users=users, ...)   # the workbook takes the sheet and adds the others
    users.discard()                     # always, last: deletes what was spooled unless the report took it

One writer thread appends the rows to a write-only sheet, which openpyxl spools to a temporary file. The
rows go in result order, as in a workbook written after the run: a tenant that finishes early waits until
the tenants before it are in. Column widths are taken from the first rows of the run (write_table's
sample), so the writer waits for those, or for the end, before the first row goes to disk.

The sheet is used only if it is the one the finished run would give: the same tenants, and the same
Findings column as the assessment's split of counted and accepted findings. Each tenant is split with
the assessment's own function (split_findings) on the day it finishes; should a run cross midnight as an
exception expires, the workbook writes its Users sheet again after the run instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from audit.models import Finding, RunResult, TenantResult
from audit.report.assess import split_findings
from audit.report.exceptions import AcceptedException
from audit.report.tables import USER_COLUMNS, USERS_SHEET, Lookups, Table, user_checks, user_rows
from audit.report.workbook import abandon, new_workbook, write_table

log = logging.getLogger("audit")

STOP_WAIT_SECONDS = 10.0  # the writer checks for a stop between rows; this only bounds a stuck disk


class Stopped(Exception):
    """The stream was discarded before its last row."""


class UsersStream:
    """One run's Users sheet, in a write-only workbook of its own that the report's workbook then becomes."""

    def __init__(
        self, exceptions: Sequence[AcceptedException] = (), lookups: Lookups | None = None, now: datetime | None = None
    ):
        """now: the moment the exceptions are judged at (the assessment's); default, when each tenant finishes."""
        self.exceptions = tuple(exceptions)
        self.now = now
        self.lookups = lookups or Lookups.default()
        self.workbook = new_workbook()
        self.tenants: list[TenantResult] = []  # as written, in result order
        self.checks: dict[tuple[str, str], list[str]] = {}  # the Findings column as written
        self._finished: dict[int, TenantResult] = {}  # tenants waiting for those before them
        self._ended = self._stopped = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._writer = threading.Thread(target=self._write, name="users-sheet", daemon=True)
        self._writer.start()

    def add(self, index: int, tenant: TenantResult) -> None:
        """Tenant number `index` of the run (0 first) is done; its rows go in once those before it are."""
        with self._changed:
            self._finished[index] = tenant
            self._changed.notify()

    def end(self) -> None:
        """Every tenant of the run has been added."""
        with self._changed:
            self._ended = True
            self._changed.notify()

    def sheet_for(
        self, result: RunResult, counted: Sequence[Finding], accepted: Sequence[Finding], lookups: Lookups
    ) -> bool:
        """Wait for the last row; True when the sheet is the one users_table gives for this assessment.

        Otherwise the sheet is discarded (and the writer's error, if it failed, raised)."""
        self.end()
        self._writer.join()
        if self._error is not None:
            self.discard()
            raise self._error
        same = (
            len(self.tenants) == len(result.tenants)
            and all(a is b for a, b in zip(self.tenants, result.tenants, strict=True))
            and self.checks == user_checks(counted, accepted)
            and self.lookups == lookups
        )
        if same:
            log.debug("the Users sheet was written during the run (%d tenants)", len(self.tenants))
        else:
            log.info("the Users sheet written during the run does not match the assessment; writing it again")
            self.discard()
        return same

    def discard(self) -> None:
        """Stop the writer and delete whatever it spooled. Harmless once the workbook was saved."""
        with self._changed:
            self._stopped = True
            self._changed.notify()
        self._writer.join(STOP_WAIT_SECONDS)
        abandon(self.workbook)

    def _next(self, index: int) -> TenantResult | None:
        with self._changed:
            while True:
                if self._stopped:
                    raise Stopped
                if index in self._finished:
                    return self._finished.pop(index)
                if self._ended:
                    return None
                self._changed.wait()

    def _rows(self) -> Iterator[list]:
        while (tenant := self._next(len(self.tenants))) is not None:
            split = split_findings([tenant], self.exceptions, self.now or datetime.now(UTC))
            checks = user_checks(split.counted, [f for f, _ in split.accepted])
            self.tenants.append(tenant)
            self.checks.update(checks)
            for row in user_rows(tenant, checks, self.lookups):
                if self._stopped:
                    raise Stopped
                yield row

    def _write(self) -> None:
        try:
            write_table(self.workbook, Table(USERS_SHEET, USER_COLUMNS, self._rows()))
        except BaseException as err:  # noqa: BLE001 - handed to the report writer, which raises it
            self._error = err

"""`etd-audit merge`: the reports of sharded runs combined into one report, as one run would have written it.

Each shard (`etd-audit run --shard K/N`) writes its own report into its own folder. The merge reads the
newest JSON report of each folder given (or the JSON file given), checks that they fit together (one
release, the same probe setting, no tenant twice) and writes one report with the normal writer. The
accepted exceptions are applied once, here, and new/resolved are computed against the previous merged
report in the output folder; the shards' own exceptions and diffs are not carried over.

The JSON report carries no users and no tenant settings: the Users and Tenant sheets are built from the
snapshot, which only the shard had. Those rows are copied from each shard's workbook (the .xlsx beside
its JSON), streamed with openpyxl's read-only mode so that memory does not grow with the users. The
Users sheet's Findings column is recomputed, since the exceptions are judged again here. A shard that
wrote no workbook leaves its users out, and the report's notes say so.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.config import AuditConfig, Config, load_config
from audit.models import Finding, RunResult, TenantResult, TenantStatus
from audit.report import ReportError, load_exceptions, read_json_report, write_reports
from audit.report.cells import text_cell
from audit.report.changes import previous_reports
from audit.report.tables import TENANT_COLUMNS, USER_COLUMNS, tenant_row, user_checks
from audit.runner import RunOutcome, exit_code, log_finished, mail_report

log = logging.getLogger("audit")

USERS, TENANT = "Users", "Tenant"
USERS_FINDINGS = len(USER_COLUMNS) - 1  # the Findings column, recomputed here
USERS_OBJECT_ID = [c.header for c in USER_COLUMNS].index("Object id")
TENANT_ID = [c.header for c in TENANT_COLUMNS].index("Tenant id")


# A shard's workbook is a zip of XML parts that openpyxl inflates as it reads them; a few hundred KB can
# hold gigabytes. Checked from the zip's directory before anything is inflated (Python's zipfile never
# returns more than a member's declared size, and fails its CRC check when the data disagrees). A real
# workbook's Users sheet takes about 1.2 KB a user and its parts compress between 2 and 20 times.
MAX_MEMBER_BYTES = 1024 * 1024 * 1024
MAX_WORKBOOK_BYTES = 2 * MAX_MEMBER_BYTES
MAX_RATIO = 100
RATIO_FROM_BYTES = 1024 * 1024  # tiny parts may compress far better than that; their size does not matter


class MergeError(Exception):
    """The inputs cannot be merged. str(e) names the input and what is wrong."""


@dataclass(frozen=True)
class ShardReport:
    source: Path  # the folder or file given
    json: Path
    workbook: Path | None  # the workbook written with the JSON, when there is one
    result: RunResult
    accepted: int  # findings the shard's own exceptions accepted (judged again here)


@dataclass
class MergeOutcome(RunOutcome):
    inputs: list[ShardReport] = field(default_factory=list)


def find_report(source: Path) -> Path:
    """The JSON report an input names: the file itself, or the newest audit report in the folder."""
    if source.is_file():
        return source
    if not source.is_dir():
        raise MergeError(f"{source}: no such file or folder")
    reports = previous_reports(source, stem="")
    if not reports:
        raise MergeError(f"{source}: no etd-audit report (etd-audit-*.json) in this folder; did its shard run?")
    return reports[0]


def read_shard(source: Path) -> ShardReport:
    path = find_report(source)
    try:
        result, counted = read_json_report(path)
    except ReportError as err:
        # Never fall back to an older report of the folder: that would merge last week's shard silently.
        raise MergeError(str(err)) from None
    workbook = path.with_suffix(".xlsx")
    workbook_found = workbook.is_file()
    if workbook_found:
        check_workbook_size(workbook)
    return ShardReport(
        source, path, workbook if workbook_found else None, result, accepted=len(result.findings) - len(counted)
    )


def check_workbook_size(path: Path) -> None:
    """Refuse a workbook whose parts would inflate beyond what a real report holds, before openpyxl reads it."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile) as err:
        raise MergeError(f"{path}: not a readable workbook ({type(err).__name__}: {err})") from None
    total = 0
    for member in members:
        total += member.file_size
        if member.file_size > MAX_MEMBER_BYTES:
            raise MergeError(
                f"{path}: its part {member.filename} would inflate to {member.file_size:,} bytes, more than "
                f"{MAX_MEMBER_BYTES // 2**20} MiB; not a workbook etd-audit wrote (or split the shard further)"
            )
        if member.file_size > RATIO_FROM_BYTES and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise MergeError(
                f"{path}: its part {member.filename} inflates {member.file_size / max(member.compress_size, 1):,.0f} "
                f"times (from {member.compress_size:,} to {member.file_size:,} bytes; a report's parts stay under "
                f"{MAX_RATIO} times): refused as a zip bomb"
            )
    if total > MAX_WORKBOOK_BYTES:
        raise MergeError(
            f"{path}: its parts would inflate to {total:,} bytes, more than {MAX_WORKBOOK_BYTES // 2**20} MiB "
            "together; not a workbook etd-audit wrote (or split the shard further)"
        )


@dataclass(frozen=True)
class Combined:
    result: RunResult
    fresh: list[ShardReport]  # the inputs whose tenants are merged; the others are too old


def combine(
    shards: Sequence[ShardReport],
    config: Config | None = None,
    *,
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> Combined:
    """One RunResult holding every shard's tenants, in the config's order; refuses inputs that do not fit.

    A shard report older than max_age is what its folder held before this run: the shard did not finish.
    Its tenants are merged as failed, so the report says so instead of repeating old results.
    """
    if not shards:
        raise MergeError("no report to merge")
    now = now or datetime.now(UTC)
    owner: dict[str, ShardReport] = {}
    for shard in shards:
        for tenant in shard.result.tenants:
            other = owner.setdefault(tenant.tenant_id.lower(), shard)
            if other is not shard:
                raise MergeError(
                    f"tenant {tenant.name} ({tenant.tenant_id}) is in both {other.json} and "
                    f"{shard.json}: each tenant must come from exactly one shard (the same shard "
                    "given twice, or shards of different N?)"
                )
    fresh = [s for s in shards if max_age is None or now - s.result.started <= max_age]
    first = (fresh or shards)[0]
    for shard in fresh:
        run = shard.result
        if run.version != first.result.version:
            raise MergeError(
                f"{shard.json} was written by etd-audit {run.version}, {first.json} by "
                f"{first.result.version}: merge the shards of one run, made by one release"
            )
        if run.probes != first.result.probes:
            raise MergeError(
                f"{shard.json} was run with mailbox probes {'on' if run.probes else 'off'}, "
                f"{first.json} with them {'on' if first.result.probes else 'off'}: merge the "
                "shards of one run"
            )

    tenants: list[TenantResult] = []
    fresh_ids = {id(s) for s in fresh}
    for shard in shards:
        if id(shard) in fresh_ids:
            tenants += shard.result.tenants
            continue
        log.warning("%s is older than --max-age; its tenants are merged as failed", shard.json)
        why = (
            f"the newest report of its shard ({shard.json.name}) is from {shard.result.started:%Y-%m-%d %H:%M} "
            "UTC, older than --max-age: the shard did not finish this run"
        )
        tenants += [TenantResult(t.name, t.tenant_id, TenantStatus.FAILED, error=why) for t in shard.result.tenants]
    if config is not None:
        configured = {t.tenant_id.lower() for t in config.tenants}
        for t in tenants:
            if t.tenant_id.lower() not in configured:
                log.warning(
                    "tenant %s (%s) of %s is not in %s; it stays in the merged report",
                    t.name,
                    t.tenant_id,
                    owner[t.tenant_id.lower()].json,
                    config.path,
                )
        tenants += missing_tenants(config, owner)
        tenants = in_config_order(tenants, fresh, config)
    runs = [s.result for s in fresh or shards]
    result = RunResult(
        started=min(r.started for r in runs),
        finished=max(r.finished for r in runs),
        version=first.result.version,
        probes=first.result.probes,
        tenants=tenants,
    )
    return Combined(result, fresh)


def missing_tenants(config: Config, present: dict[str, ShardReport]) -> list[TenantResult]:
    """Configured tenants no input covers: failed, so that a shard that did not finish is not a clean pass."""
    return [
        TenantResult(
            t.name,
            t.tenant_id,
            TenantStatus.FAILED,
            error="not in any shard report given to the merge (did its shard run and finish?)",
        )
        for t in config.tenants
        if t.tenant_id.lower() not in present
    ]


def in_config_order(tenants: list[TenantResult], shards: Sequence[ShardReport], config: Config) -> list[TenantResult]:
    """The config's order (a single run's order), when every shard's own order agrees with it.

    The shards' workbooks are read front to back once, so the merged order must keep each shard's order;
    shards made from a config in another order keep the order they came in.
    """
    position = {t.tenant_id.lower(): i for i, t in enumerate(config.tenants)}
    rank = {t.tenant_id.lower(): (position.get(t.tenant_id.lower(), len(position)), i) for i, t in enumerate(tenants)}
    for shard in shards:
        ranks = [rank[t.tenant_id.lower()] for t in shard.result.tenants]
        if ranks != sorted(ranks):
            log.warning(
                "%s lists its tenants in another order than the config; the merge keeps input order", shard.json
            )
            return tenants
    return sorted(tenants, key=lambda t: rank[t.tenant_id.lower()])


class _Workbooks:
    """The shards' workbooks, each opened once (read-only: rows are parsed as they are asked for)."""

    def __init__(self):
        self._open: dict[Path, object] = {}

    def get(self, path: Path):
        from openpyxl import DEFUSEDXML, load_workbook

        if path not in self._open:
            if not DEFUSEDXML:
                log.warning(
                    "openpyxl is not using defusedxml (not installed, or OPENPYXL_DEFUSEDXML is not True): %s "
                    "is parsed without protection against XML entity expansion",
                    path,
                )
            self._open[path] = load_workbook(path, read_only=True, data_only=True)
        return self._open[path]

    def close(self) -> None:
        for wb in self._open.values():
            wb.close()


def _why(err: BaseException) -> str:
    """The error, and the one openpyxl wrapped in it (e.g. defusedxml's EntitiesForbidden), on one line."""
    cause = err.__cause__
    text = " ".join(str(err).split())
    return f"{text} ({type(cause).__name__}: {cause})" if cause is not None else text


class _SheetRows:
    """One sheet of a shard's workbook, read front to back once, one row looked ahead."""

    def __init__(self, books: _Workbooks, path: Path, sheet: str, columns: Sequence[str]):
        self.books, self.path, self.sheet, self.columns = books, path, sheet, list(columns)
        self._rows: Iterator[tuple] | None = None
        self._next: list | None = None

    def _open(self) -> None:
        try:
            rows = self.books.get(self.path)[self.sheet].iter_rows(values_only=True)
            header = [h for h in next(rows, ()) if h is not None]
        except (OSError, KeyError, ValueError) as err:
            raise MergeError(f"{self.path}: cannot read its {self.sheet} sheet: {_why(err)}") from None
        except Exception as err:  # noqa: BLE001 - zipfile and openpyxl raise many kinds for a damaged file
            raise MergeError(f"{self.path}: not a readable workbook ({type(err).__name__}: {_why(err)})") from None
        if header != self.columns:
            raise MergeError(
                f"{self.path}: its {self.sheet} sheet has other columns than this version writes "
                "(a report of another release?)"
            )
        self._rows = rows
        self._advance()

    def _advance(self) -> None:
        raw = next(self._rows, None)
        # Read-only rows stop at the last filled cell; pad them back to the header's width.
        self._next = None if raw is None else (list(raw) + [None] * len(self.columns))[: len(self.columns)]

    def peek(self) -> list | None:
        if self._rows is None:
            self._open()
        return self._next

    def take_while(self, column: int, value: str) -> Iterator[list]:
        while (row := self.peek()) is not None and row[column] == value:
            self._advance()
            yield row

    def rest(self) -> Iterator[list]:
        while (row := self.peek()) is not None:
            self._advance()
            yield row


class CarriedSheets:
    """The Users and Tenant rows of the merged report, copied from the shards' workbooks."""

    def __init__(self, result: RunResult, shards: Sequence[ShardReport]):
        self.result = result
        self.owner = {t.tenant_id.lower(): s for s in shards for t in s.result.tenants}
        self.books = _Workbooks()
        self.users = {
            id(s): _SheetRows(self.books, s.workbook, USERS, [c.header for c in USER_COLUMNS])
            for s in shards
            if s.workbook
        }
        self.tenants = {
            id(s): _SheetRows(self.books, s.workbook, TENANT, [c.header for c in TENANT_COLUMNS])
            for s in shards
            if s.workbook
        }

    def notes(self) -> list[str]:
        bare = [
            t.name
            for t in self.result.tenants
            if (s := self.owner.get(t.tenant_id.lower())) is not None and s.workbook is None
        ]
        if not bare:
            return []
        return [
            f"Users and tenant settings of {', '.join(bare)} are not in this workbook: their shard wrote no "
            "workbook (run the shards with the xlsx format)."
        ]

    def sheet_rows(self) -> dict:
        return {USERS: self.user_rows, TENANT: self.tenant_rows}

    def user_rows(self, counted: Sequence[Finding], accepted: Sequence[Finding]) -> Iterator[list]:
        checks = user_checks(counted, accepted)  # the Findings column, as a run's own workbook words it
        for t in self.result.tenants:
            shard = self.owner.get(t.tenant_id.lower())
            if shard is None or shard.workbook is None:
                continue
            for row in self.users[id(shard)].take_while(0, text_cell(t.name)):
                row[USERS_FINDINGS] = ", ".join(checks.get((t.tenant_id, row[USERS_OBJECT_ID]), []))
                yield row
        for sheet in self.users.values():
            left = sheet.peek()
            if left is not None:
                raise MergeError(
                    f"{sheet.path}: Users rows of tenant {left[0]!r} do not follow its JSON report's "
                    "tenants; the workbook and the JSON are not of one run"
                )

    def tenant_rows(self, counted: Sequence[Finding], accepted: Sequence[Finding]) -> list[list]:
        by_id: dict[str, list] = {}
        for sheet in self.tenants.values():
            for row in sheet.rest():
                by_id[str(row[TENANT_ID]).lower()] = row
        rows = []
        for t in self.result.tenants:
            row = by_id.get(t.tenant_id.lower())
            if row is None:  # a tenant no shard read, or one whose shard wrote no workbook
                if t.status != TenantStatus.FAILED:
                    t = replace(t, error="settings not carried into the merge: its shard wrote no workbook")
                row = tenant_row(t)
            rows.append(row)
        return rows

    def close(self) -> None:
        self.books.close()


def merge(
    sources: Sequence[Path],
    out_dir: Path | None,
    *,
    config_path: Path | None = None,
    stem: str | None = None,
    formats: Sequence[str] | None = None,
    max_age: timedelta | None = None,
    email: bool = True,
) -> MergeOutcome:
    """Merge the shard reports in `sources` into one report in out_dir (default: the config's out_dir)."""
    config = load_config(config_path) if config_path else None
    audit = config.audit if config else AuditConfig()
    out_dir = out_dir or (audit.out_dir if config else None)
    if out_dir is None:
        raise MergeError("say where the merged report goes: --out DIR, or --config (its audit.out_dir)")
    shards = [read_shard(Path(s)) for s in sources]
    for shard in shards:
        if shard.json.parent.resolve() == Path(out_dir).resolve():
            raise MergeError(
                f"{out_dir} is also an input ({shard.source}): write the merged report to a folder "
                "of its own, or the next merge reads it back as a shard"
            )
    combined = combine(shards, config, max_age=max_age)
    result = combined.result

    notes = []
    exceptions = load_exceptions(audit.exceptions_file) if audit.exceptions_file else ()
    carried_accepted = sum(s.accepted for s in shards)
    if config is None and carried_accepted:
        notes.append(
            f"{carried_accepted} finding(s) accepted by exceptions in the shard reports count here: the "
            "merge applies exceptions only from the config (--config)."
        )
    carried = CarriedSheets(result, combined.fresh)
    try:
        files = write_reports(
            result,
            Path(out_dir),
            stem=stem,
            formats=formats or audit.formats,
            keep=audit.keep,
            exceptions=exceptions,
            sheet_rows=carried.sheet_rows(),
            extra_notes=[*carried.notes(), *notes],
        )
    finally:
        carried.close()
    code = exit_code(result, files.assessment.findings, audit.fail_on)
    outcome = MergeOutcome(result, files, code, inputs=shards)
    if email and config is not None:
        mail_report(outcome, config)
    log_finished(outcome)
    return outcome

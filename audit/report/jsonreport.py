"""The JSON twin of the workbook: a stable format other tools (and the next run) read.

Schema 1::

    {"schema": 1,
     "run": {"started", "finished", "version", "probes"},
     "tenants": [{"name", "tenant_id", "status", "error", "users_scanned", "mailboxes_probed",
                  "not_evaluated": [{"check_id", "reason", "read_in"}], "users_in_directory", "not_assessed",
                  "failure"}],
     "findings": [{tenant_id, check_id, severity, user_principal_name, user_id, display_name,
                   predicted_error, cause, fix, evidence, first_seen, subject}],
     "accepted": [{...finding..., "exception": {"check_id", "user", "tenant", "reason", "owner",
                                                "expires", "source"}}],
     "trend": [{"report", "started", "critical", "high", "medium", "low"}]}

"trend" holds the findings that counted, by severity, in up to 11 earlier reports of the same folder and
in this one (last), oldest first; the Summary sheet charts the same numbers.

Keys may be added; none is ever removed or renamed.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from audit.checks import check_info
from audit.models import (
    FINDING_FIELDS,
    Failure,
    Finding,
    NotEvaluated,
    RunResult,
    Severity,
    TenantResult,
    TenantStatus,
    legacy_read_in,
    subject_of,
)
from audit.report.cells import iso, parse_time
from audit.report.exceptions import AcceptedException

if TYPE_CHECKING:
    from audit.report.trend import Point

SCHEMA = 1
# Larger than any report a real run writes (about 1 KB a finding: a quarter of a million findings), small
# enough that parsing stays within a worker's memory. A merge reads files other machines wrote.
MAX_REPORT_BYTES = 256 * 1024 * 1024


class ReportError(Exception):
    """An earlier report cannot be read. str(e) names the file and what is wrong."""


def finding_json(finding: Finding) -> dict:
    data = asdict(finding)
    data["severity"] = str(finding.severity)
    return data


def report_json(
    result: RunResult,
    counted: Sequence[Finding],
    accepted: Sequence[tuple[Finding, AcceptedException]],
    trend: Sequence[Point] = (),
) -> dict:
    return {
        "schema": SCHEMA,
        "run": {
            "started": iso(result.started),
            "finished": iso(result.finished),
            "version": result.version,
            "probes": bool(result.probes),
        },
        "tenants": [_tenant_json(t) for t in result.tenants],
        "findings": [finding_json(f) for f in counted],
        "accepted": [finding_json(f) | {"exception": _exception_json(e)} for f, e in accepted],
        "trend": [p.as_json() for p in trend],
    }


def _tenant_json(t: TenantResult) -> dict:
    return {
        "name": t.name,
        "tenant_id": t.tenant_id,
        "status": str(t.status),
        "error": t.error,
        "users_scanned": t.users_scanned,
        "mailboxes_probed": t.mailboxes_probed,
        "not_evaluated": [{"check_id": n.check_id, "reason": n.reason, "read_in": n.read_in} for n in t.not_evaluated],
        "users_in_directory": t.users_in_directory,
        "not_assessed": dict(t.not_assessed),
        "not_assessed_users": list(t.not_assessed_users),
        "failure": str(t.failure) if t.failure else None,
    }


def _exception_json(e: AcceptedException) -> dict:
    return {
        "check_id": e.check_id,
        "user": e.user,
        "tenant": e.tenant,
        "reason": e.reason,
        "owner": e.owner,
        "expires": e.expires.isoformat(),
        "source": e.source,
    }


def dump(data: dict) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def dump_to(fh: BinaryIO, data: dict) -> None:
    """Write dump(data) as it is made: a report of 100,000 users is never one string (and its bytes) in memory."""
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    try:
        json.dump(data, text, ensure_ascii=False, indent=1)
        text.write("\n")
    finally:
        text.detach()  # flushed, and fh left open for its owner


def read_json_report(path: str | Path) -> tuple[RunResult, list[Finding]]:
    """Read a report written by `write_reports`.

    Returns the run as a RunResult whose tenants carry every finding of the report (those that
    counted and those accepted by an exception, each with its first_seen), and, second, only the
    findings that counted in that report. Raises ReportError for a file that is not such a report.
    """
    path = Path(path)
    try:
        data = json.loads(_read_capped(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a readable JSON report: {err}") from None
    except RecursionError:
        raise ReportError(f"{path}: not an etd-audit report: its JSON is nested too deeply to read") from None
    try:
        _need(data, (dict,), "the top level")
        if data.get("schema") != SCHEMA:
            raise ReportError(
                f"{path}: unsupported report schema {data.get('schema')!r} (this version reads schema {SCHEMA})"
            )
        _check_types(data)
        run = data["run"]
        counted = [_finding(d) for d in data["findings"]]
        accepted = [_finding(d) for d in data.get("accepted", [])]
        by_tenant: dict[str, list[Finding]] = {}
        for f in counted + accepted:
            by_tenant.setdefault(f.tenant_id, []).append(f)
        tenants = [_tenant(d, by_tenant.pop(d["tenant_id"], [])) for d in data["tenants"]]
        for tenant_id, findings in by_tenant.items():  # findings of a tenant the list lacks
            tenants.append(TenantResult(tenant_id, tenant_id, TenantStatus.OK, findings=findings))
        started, finished = parse_time(run["started"]), parse_time(run["finished"])
        if started is None or finished is None:
            raise ReportError(f"{path}: run.started / run.finished are not ISO-8601 times")
        result = RunResult(
            started=started, finished=finished, version=str(run["version"]), probes=bool(run["probes"]), tenants=tenants
        )
    except ReportError:
        raise
    except _WrongType as err:
        raise ReportError(f"{path}: not a valid etd-audit report: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ReportError(f"{path}: not a valid etd-audit report ({type(err).__name__}: {err})") from None
    return result, counted


def _read_capped(path: Path) -> bytes:
    """The file's bytes: only a regular file, and only up to MAX_REPORT_BYTES (checked before reading)."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below then refuses it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReportError(f"{path}: not a regular file; give the report's JSON file itself")
        if st.st_size > MAX_REPORT_BYTES:
            raise ReportError(
                f"{path}: {st.st_size:,} bytes, more than a report may have ({MAX_REPORT_BYTES // 2**20} MiB); "
                "this is not a report this version wrote"
            )
        data = fh.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:  # it grew while being read
        raise ReportError(f"{path}: larger than a report may be ({MAX_REPORT_BYTES // 2**20} MiB)")
    return data


TEXT, OPTIONAL_TEXT, COUNT = (str,), (str, type(None)), (int, type(None))
FINDING_TYPES = {
    **{name: TEXT for name in ("tenant_id", "check_id", "severity", "predicted_error", "cause", "fix", "evidence")},
    **{name: OPTIONAL_TEXT for name in ("user_principal_name", "user_id", "display_name", "first_seen", "subject")},
}
TENANT_TYPES = {
    "name": TEXT,
    "tenant_id": TEXT,
    "status": TEXT,
    "error": OPTIONAL_TEXT,
    "users_scanned": COUNT,
    "users_in_directory": COUNT,
    "mailboxes_probed": COUNT,
    "not_assessed": (dict, type(None)),
    "not_evaluated": (list, type(None)),
    "not_assessed_users": (list, type(None)),
    "failure": OPTIONAL_TEXT,
}


class _WrongType(ValueError):
    pass


def _need(value, types: tuple[type, ...], where: str):
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        wanted = " or ".join("null" if t is type(None) else _JSON_NAMES[t] for t in types)
        raise _WrongType(f"{where} is {_json_type(value)}, not {wanted}")
    return value


_JSON_NAMES = {str: "a string", int: "an integer", bool: "true/false", dict: "an object", list: "an array"}


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return _JSON_NAMES.get(type(value), "a number" if isinstance(value, float) else type(value).__name__)


def _check_types(data) -> None:
    """Refuse values of the wrong JSON type before anything uses them (an integer tenant_id, say)."""
    run = _need(data.get("run"), (dict,), "run")
    for name in ("started", "finished", "version"):
        _need(run.get(name), TEXT, f"run.{name}")
    _need(run.get("probes"), (bool,), "run.probes")
    for section in ("findings", "accepted"):
        items = data.get(section, [])
        for i, d in enumerate(_need(items, (list,), section)):
            _need(d, (dict,), f"{section}[{i}]")
            for name, types in FINDING_TYPES.items():
                _need(d.get(name), types, f"{section}[{i}].{name}")
    for i, t in enumerate(_need(data.get("tenants"), (list,), "tenants")):
        where = f"tenants[{i}]"
        _need(t, (dict,), where)
        for name, types in TENANT_TYPES.items():
            _need(t.get(name), types, f"{where}.{name}")
        for key, count in (t.get("not_assessed") or {}).items():
            _need(count, (int,), f"{where}.not_assessed[{key!r}]")
        for j, n in enumerate(t.get("not_evaluated") or []):
            _need(n, (dict,), f"{where}.not_evaluated[{j}]")
            _need(n.get("check_id"), TEXT, f"{where}.not_evaluated[{j}].check_id")
            _need(n.get("reason"), TEXT, f"{where}.not_evaluated[{j}].reason")
            _need(n.get("read_in"), OPTIONAL_TEXT, f"{where}.not_evaluated[{j}].read_in")
        for j, user in enumerate(t.get("not_assessed_users") or []):
            _need(user, TEXT, f"{where}.not_assessed_users[{j}]")


def _finding(d: dict) -> Finding:
    values = {name: d.get(name) for name in FINDING_FIELDS}
    for name in ("tenant_id", "check_id", "severity", "predicted_error", "cause", "fix", "evidence"):
        if values[name] is None:
            raise KeyError(name)
    values["severity"] = Severity(values["severity"])
    if "subject" not in d and values["user_id"] is None:  # written before findings stored their subject
        info = check_info(values["check_id"])
        values["subject"] = subject_of(info.legacy_subject, values["evidence"]) if info else None
    return Finding(**values)


def _failure(d: dict) -> Failure | None:
    if "failure" in d:
        return Failure(d["failure"]) if d["failure"] else None
    # Written before tenants stored their failure kind: the error said it.
    if d.get("status") == TenantStatus.FAILED:
        return Failure.AUTHENTICATION if str(d.get("error") or "").startswith("authentication") else Failure.GRAPH
    return None


def _not_evaluated(n: dict) -> NotEvaluated:
    read_in = n["read_in"] if "read_in" in n else legacy_read_in(n["reason"])  # older reports: in the reason
    return NotEvaluated(n["check_id"], n["reason"], read_in)


def _tenant(d: dict, findings: list[Finding]) -> TenantResult:
    return TenantResult(
        name=d["name"],
        tenant_id=d["tenant_id"],
        status=TenantStatus(d["status"]),
        error=d.get("error"),
        users_scanned=int(d.get("users_scanned") or 0),
        users_in_directory=d.get("users_in_directory"),
        mailboxes_probed=int(d.get("mailboxes_probed") or 0),
        not_assessed={str(k): int(v) for k, v in (d.get("not_assessed") or {}).items()},
        not_evaluated=[_not_evaluated(n) for n in d.get("not_evaluated") or []],
        findings=findings,
        not_assessed_users=tuple(str(u) for u in d.get("not_assessed_users") or ()),
        failure=_failure(d),
    )
